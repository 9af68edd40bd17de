"""What orders consumes. Customer and webhook handlers arrive with their issues."""

from shared.messaging import Subscriptions

subscriptions = Subscriptions()
