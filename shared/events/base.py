"""Typed event models: the one source of truth for every event Rapport publishes.

An event type is a frozen Pydantic model that names its CloudEvents ``type`` and its topic::

    class OrderPlaced(Event):
        event_type: ClassVar[str] = "rapport.order.placed.v1"
        topic: ClassVar[str] = ORDER_TOPIC
        ...

Subclasses register themselves; :func:`event_class` finds the model for a ``type`` when a
consumer decodes a message. Changing a published model incompatibly means a new ``.vN`` type.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CUSTOMER_TOPIC",
    "INTERACTION_TOPIC",
    "ORDER_TOPIC",
    "SEGMENT_TOPIC",
    "TOPICS",
    "WEBHOOK_STATUS_TOPIC",
    "WEBHOOK_TOPIC",
    "Event",
    "dead_letter_topic",
    "event_class",
    "registered_events",
]

CUSTOMER_TOPIC = "rapport.customer.v1"
INTERACTION_TOPIC = "rapport.interaction.v1"
ORDER_TOPIC = "rapport.order.v1"
SEGMENT_TOPIC = "rapport.segment.v1"
WEBHOOK_TOPIC = "rapport.webhook.v1"
#: How far the services got with a received webhook (processed, ignored, failed).
WEBHOOK_STATUS_TOPIC = "rapport.webhook.status.v1"
TOPICS: tuple[str, ...] = (
    CUSTOMER_TOPIC,
    INTERACTION_TOPIC,
    ORDER_TOPIC,
    SEGMENT_TOPIC,
    WEBHOOK_TOPIC,
    WEBHOOK_STATUS_TOPIC,
)

_REGISTRY: dict[str, type[Event]] = {}


def dead_letter_topic(group: str) -> str:
    """The dead-letter topic of a consumer group."""
    return f"rapport.dlq.{group}"


class Event(BaseModel):
    """Base of every event. ``customer_id`` is the Kafka key and the CloudEvents subject."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]

    customer_id: UUID

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        event_type = cls.__dict__.get("event_type")
        if event_type is None:
            return  # an abstract intermediate class
        if event_type in _REGISTRY and _REGISTRY[event_type] is not cls:
            raise TypeError(f"event type {event_type!r} is defined twice")
        if cls.topic not in TOPICS:
            raise TypeError(f"{cls.__name__}.topic {cls.topic!r} is not a Rapport topic")
        _REGISTRY[event_type] = cls

    @property
    def subject(self) -> str:
        """CloudEvents subject and Kafka key: keeps all events of one customer in order."""
        return str(self.customer_id)


def event_class(event_type: str) -> type[Event] | None:
    return _REGISTRY.get(event_type)


def registered_events() -> list[type[Event]]:
    return sorted(_REGISTRY.values(), key=lambda c: c.event_type)
