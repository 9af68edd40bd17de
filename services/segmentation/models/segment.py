from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base


class Segment(Base):
    """A segment definition: ``dynamic`` (a rule over the features, membership computed) or
    ``static`` (a list of customers, changed by hand or upload).

    ``version`` grows with every rule edit; each membership row records the version that
    produced it, and a rule edit rewrites the whole membership in one transaction, so one
    segment's members never come from two versions. ``inputs`` lists what the rule reads
    (feature names, ``event:<type>``, ``segment:<id>``): an event re-evaluates a customer
    only against the segments whose inputs it changed. ``refers_to`` are the segments named
    by ``member_of`` (directly), used to refuse cycles and to recompute dependents.
    """

    __tablename__ = "segment"
    __table_args__ = (
        CheckConstraint("kind IN ('dynamic', 'static')", name="kind_known"),
        CheckConstraint("(kind = 'dynamic') = (rule IS NOT NULL)", name="rule_iff_dynamic"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    inputs: Mapped[list[str]] = mapped_column(
        ARRAY(String(200)), server_default=text("'{}'::character varying[]")
    )
    refers_to: Mapped[list[UUID]] = mapped_column(
        ARRAY(Uuid()), server_default=text("'{}'::uuid[]")
    )
    time_relative: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    recomputed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SegmentMember(Base):
    """One customer in one segment, with the definition version that put them there."""

    __tablename__ = "segment_member"

    segment_id: Mapped[UUID] = mapped_column(
        ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[UUID] = mapped_column(primary_key=True, index=True)
    version: Mapped[int] = mapped_column(Integer)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerEvent(Base):
    """The per-customer event log behind behaviour conditions ("placed at least 2 orders on
    the web in the last 30 days").

    Bounded: a rule may look back at most :data:`MAX_WINDOW_DAYS` days, and the scheduler
    deletes older rows (by ``occurred_at``, indexed), so the log holds about a year of each
    customer's events whatever their history. ``attrs`` carries the few attributes a rule
    may filter on (order total and channel, interaction channel and kind …).
    """

    __tablename__ = "customer_event"
    __table_args__ = (
        Index("ix_segmentation_customer_event_lookup", "customer_id", "type", "occurred_at"),
        Index("ix_segmentation_customer_event_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    customer_id: Mapped[UUID] = mapped_column()
    type: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


#: How far back a behaviour condition may look, and how long the event log keeps events.
MAX_WINDOW_DAYS = 365
