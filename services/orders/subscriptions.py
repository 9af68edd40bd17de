"""What orders consumes: customer events (data scope, merge, erase) and partner webhooks."""

from services.orders.deal import handlers as deal_handlers
from services.orders.loyalty import handlers as loyalty_handlers
from services.orders.models.base import customer_scope
from services.orders.order import handlers
from services.orders.partner.handlers import on_webhook_received
from shared.events import CustomerErased, CustomerMerged, WebhookReceived
from shared.messaging import Subscriptions
from shared.privacy import follow_customer_scope

subscriptions = Subscriptions()
follow_customer_scope(subscriptions, customer_scope)
subscriptions.on(CustomerMerged)(handlers.on_customer_merged)
subscriptions.on(CustomerMerged)(deal_handlers.on_customer_merged)
subscriptions.on(CustomerMerged)(loyalty_handlers.on_customer_merged)
subscriptions.on(CustomerErased)(handlers.on_customer_erased)
subscriptions.on(CustomerErased)(deal_handlers.on_customer_erased)
subscriptions.on(WebhookReceived)(on_webhook_received)
