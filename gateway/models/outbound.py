"""Outbound webhooks: partner endpoints, the messages Rapport sends them, each delivery's
queue state and every attempt (the delivery log)."""

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base


class OutboundEndpoint(Base):
    """A partner URL subscribed to some event types."""

    __tablename__ = "outbound_endpoint"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    #: The principal (user or API key subject) that created it; only it and admins see it.
    owner: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(Text)
    #: Event types or patterns (``rapport.order.*``).
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(200)))
    #: Only customers of this segment (kept from SegmentEntered/SegmentExited).
    segment_id: Mapped[UUID | None] = mapped_column()
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: First failure of the current run of failures; cleared by a success.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboundSecret(Base):
    """A signing secret of an endpoint, encrypted at rest (it is needed in clear to sign).

    After a rotation the previous secrets keep signing until ``expires_at``: a message then
    carries one signature per live secret, and the receiver accepts whichever it knows.
    """

    __tablename__ = "outbound_secret"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    endpoint_id: Mapped[UUID] = mapped_column(
        ForeignKey("outbound_endpoint.id", ondelete="CASCADE"), index=True
    )
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboundMessage(Base):
    """One Rapport event as partners receive it; its id is the stable ``webhook-id``."""

    __tablename__ = "outbound_message"
    __table_args__ = (Index(None, "customer_id", "created_at"),)

    #: ``msg_<event id hex>``: the same event always makes the same message.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[UUID] = mapped_column()
    #: The JSON body sent: ``{"type", "timestamp", "data"}``; emptied by a privacy erase.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    erased: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: The event's W3C ``traceparent``: each delivery continues the event's trace.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboundDelivery(Base):
    """A message on its way to one endpoint: the endpoint's queue entry."""

    __tablename__ = "outbound_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id"),
        Index(
            None,
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(None, "endpoint_id", "customer_id", "seq"),
    )

    #: Queue order: per endpoint and customer, a delivery waits for the earlier ones.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    endpoint_id: Mapped[UUID] = mapped_column(
        ForeignKey("outbound_endpoint.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(ForeignKey("outbound_message.id", ondelete="CASCADE"))
    customer_id: Mapped[UUID] = mapped_column()
    #: pending → delivering → succeeded | failed (attempts exhausted) | cancelled
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    #: While ``delivering``: when the claim lapses (a crashed sender's delivery is retried).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboundAttempt(Base):
    """One HTTP attempt of a delivery (the delivery log)."""

    __tablename__ = "outbound_attempt"
    __table_args__ = (Index(None, "endpoint_id", "attempted_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    delivery_seq: Mapped[int] = mapped_column(
        ForeignKey("outbound_delivery.seq", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[UUID] = mapped_column()
    message_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(200))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: succeeded | failed | gone (410) | timeout | refused (address not allowed)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column()
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class OutboundSegmentMember(Base):
    """Segment membership as SegmentEntered/SegmentExited told it, for endpoint filters."""

    __tablename__ = "outbound_segment_member"

    segment_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID] = mapped_column(primary_key=True)


__all__ = [
    "OutboundAttempt",
    "OutboundDelivery",
    "OutboundEndpoint",
    "OutboundMessage",
    "OutboundSecret",
    "OutboundSegmentMember",
]
