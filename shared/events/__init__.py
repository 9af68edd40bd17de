"""Event contracts (typed models), the CloudEvents envelope, and the AsyncAPI document."""

from shared.events.asyncapi import asyncapi_document
from shared.events.base import (
    CUSTOMER_TOPIC,
    INTERACTION_TOPIC,
    ORDER_TOPIC,
    SEGMENT_TOPIC,
    TOPICS,
    WEBHOOK_TOPIC,
    Event,
    dead_letter_topic,
    event_class,
    registered_events,
)
from shared.events.catalog import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    InteractionRecorded,
    OrderPlaced,
    OrderStatusChanged,
    SegmentEntered,
    SegmentExited,
    WebhookReceived,
)
from shared.events.envelope import Envelope, EnvelopeError, UnknownEventType

__all__ = [
    "CUSTOMER_TOPIC",
    "INTERACTION_TOPIC",
    "ORDER_TOPIC",
    "SEGMENT_TOPIC",
    "TOPICS",
    "WEBHOOK_TOPIC",
    "CustomerCreated",
    "CustomerErased",
    "CustomerMerged",
    "CustomerUpdated",
    "Envelope",
    "EnvelopeError",
    "Event",
    "InteractionRecorded",
    "OrderPlaced",
    "OrderStatusChanged",
    "SegmentEntered",
    "SegmentExited",
    "UnknownEventType",
    "WebhookReceived",
    "asyncapi_document",
    "dead_letter_topic",
    "event_class",
    "registered_events",
]
