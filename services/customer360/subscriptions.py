"""What customer360 consumes. The 360 view and timeline handlers arrive with their issue."""

from shared.messaging import Subscriptions

subscriptions = Subscriptions()
