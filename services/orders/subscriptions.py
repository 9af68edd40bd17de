"""What orders consumes: customer events, to keep the data-scope projection."""

from services.orders.models.base import customer_scope
from shared.messaging import Subscriptions
from shared.privacy import follow_customer_scope

subscriptions = Subscriptions()
follow_customer_scope(subscriptions, customer_scope)
