"""What the gateway consumes: the outcome services report for received webhooks."""

from gateway.webhooks.handlers import on_webhook_processed
from shared.events import WebhookProcessed
from shared.messaging import Subscriptions

subscriptions = Subscriptions()
subscriptions.on(WebhookProcessed)(on_webhook_processed)
