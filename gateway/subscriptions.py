"""What the gateway consumes: the outcome services report for received webhooks, and erased
customers (whose webhooks' stored bodies are emptied)."""

from gateway.webhooks.handlers import on_customer_erased, on_webhook_processed
from shared.events import CustomerErased, WebhookProcessed
from shared.messaging import Subscriptions

subscriptions = Subscriptions()
subscriptions.on(WebhookProcessed)(on_webhook_processed)
subscriptions.on(CustomerErased)(on_customer_erased)
