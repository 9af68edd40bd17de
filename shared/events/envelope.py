"""CloudEvents 1.0 over Kafka, **binary content mode**.

The event's ``data`` is the Kafka message value (JSON, UTF-8); the context attributes travel
as ``ce_*`` headers (``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``, ``ce_subject``,
``ce_time``) plus ``content-type``; the Kafka key is the subject (the customer id). Binary
mode was chosen over structured mode because consumers route and dedupe on headers without
parsing the body, and the value stays the plain JSON document that the AsyncAPI schema
describes. A W3C ``traceparent`` header is carried along when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from shared.events.base import Event, event_class

__all__ = ["Envelope", "EnvelopeError", "UnknownEventType"]

SPECVERSION = "1.0"
JSON = "application/json"


class EnvelopeError(ValueError):
    """A Kafka message that is not a valid Rapport CloudEvent."""


class UnknownEventType(EnvelopeError):
    """A well-formed CloudEvent of a type this build does not know."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: UUID
    source: str
    type: str
    subject: str
    time: datetime
    data: bytes
    topic: str
    datacontenttype: str = JSON
    extensions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        id: UUID | None = None,
        time: datetime | None = None,
        extensions: dict[str, str] | None = None,
    ) -> Envelope:
        return cls(
            id=id or uuid4(),
            source=source,
            type=event.event_type,
            subject=event.subject,
            time=time or datetime.now(UTC),
            data=event.model_dump_json().encode(),
            topic=event.topic,
            extensions=dict(extensions or {}),
        )

    def event(self) -> Event:
        """Decode ``data`` into the typed model registered for ``type``."""
        model = event_class(self.type)
        if model is None:
            raise UnknownEventType(f"unknown event type {self.type!r}")
        try:
            return model.model_validate_json(self.data)
        except ValidationError as exc:
            raise EnvelopeError(f"{self.type} data does not match its schema: {exc}") from exc

    @property
    def key(self) -> bytes:
        return self.subject.encode()

    def header_pairs(self) -> list[tuple[str, str]]:
        """The Kafka headers as text (the outbox stores them so)."""
        return [
            ("ce_specversion", SPECVERSION),
            ("ce_id", str(self.id)),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_subject", self.subject),
            ("ce_time", self.time.isoformat()),
            ("content-type", self.datacontenttype),
            *self.extensions.items(),
        ]

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.header_pairs()]

    @classmethod
    def from_kafka(
        cls, topic: str, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Envelope:
        h: dict[str, str] = {}
        for name, raw in headers:
            try:
                h[name] = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {name!r} is not UTF-8") from exc
        missing = [n for n in ("ce_id", "ce_source", "ce_type", "ce_time") if n not in h]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if h.get("ce_specversion") != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {h.get('ce_specversion')!r}")
        try:
            event_id = UUID(h["ce_id"])
            time = datetime.fromisoformat(h["ce_time"])
        except ValueError as exc:
            raise EnvelopeError(f"bad ce_id or ce_time: {exc}") from exc
        known = {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"}
        return cls(
            id=event_id,
            source=h["ce_source"],
            type=h["ce_type"],
            subject=h.get("ce_subject", ""),
            time=time,
            data=value or b"",
            topic=topic,
            datacontenttype=h.get("content-type", JSON),
            extensions={k: v for k, v in h.items() if k not in known and k != "content-type"},
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for logs and dead letters."""
        return {
            "id": str(self.id),
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "topic": self.topic,
        }
