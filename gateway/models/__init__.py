"""Tables of the gateway (``gateway`` schema): API keys, webhook sources and receipts, and the
outbox through which received webhooks reach ``rapport.webhook.v1``."""

from gateway.models.api_key import ApiKey
from gateway.models.base import Base
from gateway.models.outbound import (
    OutboundAttempt,
    OutboundDelivery,
    OutboundEndpoint,
    OutboundMessage,
    OutboundSecret,
    OutboundSegmentMember,
)
from gateway.models.webhook import ErasedCustomer, WebhookReceipt, WebhookSecret, WebhookSource

__all__ = [
    "ApiKey",
    "Base",
    "ErasedCustomer",
    "OutboundAttempt",
    "OutboundDelivery",
    "OutboundEndpoint",
    "OutboundMessage",
    "OutboundSecret",
    "OutboundSegmentMember",
    "WebhookReceipt",
    "WebhookSecret",
    "WebhookSource",
]
