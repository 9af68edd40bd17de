"""What orders consumes: customer events, to keep the data-scope projection."""

from services.orders.models.base import customer_scope
from services.orders.order import handlers
from shared.events import CustomerErased, CustomerMerged
from shared.messaging import Subscriptions
from shared.privacy import follow_customer_scope

subscriptions = Subscriptions()
follow_customer_scope(subscriptions, customer_scope)
subscriptions.on(CustomerMerged)(handlers.on_customer_merged)
subscriptions.on(CustomerErased)(handlers.on_customer_erased)
