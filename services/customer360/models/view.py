"""The 360 view's read model: per-customer aggregates and the timeline, built from events.

Every table here is keyed by a customer id without a foreign key to ``customer``: events
about a customer may arrive before customer360 has the profile (or from a part that knows a
customer id customer360 never stored), and must be kept, not refused.

* ``customer_summary`` — one row of counters and latest values per customer.
* ``customer_spend`` — order count and exact spend per customer and currency (amounts in
  different currencies are never added together).
* ``customer_order`` / ``customer_ticket`` — the little state of each order and ticket the
  aggregates need to stay right when a status changes (a cancelled order's amount leaves
  the spend; a resolved ticket stops being open), whatever order the events come in.
* ``timeline_entry`` — what happened to the customer, newest first.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.customer360.models.base import Base

__all__ = ["CustomerOrder", "CustomerSpend", "CustomerSummary", "CustomerTicket", "TimelineEntry"]


class CustomerSummary(Base):
    """What the 360 view shows at a glance, updated by each event as it arrives."""

    __tablename__ = "customer_summary"
    __table_args__ = (
        CheckConstraint("order_count >= 0", name="order_count"),
        CheckConstraint("open_tickets >= 0", name="open_tickets"),
        CheckConstraint("csat_count >= 0 AND csat_sum >= 0", name="csat"),
        Index("ix_customer_summary_segment_ids", "segment_ids", postgresql_using="gin"),
        Index("ix_customer_summary_lifecycle_stage", "lifecycle_stage"),
    )

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    #: Orders that count (placed, not cancelled or refunded), over every currency.
    order_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_interaction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_interaction_channel: Mapped[str | None] = mapped_column(String(50))
    open_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    csat_sum: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    csat_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_nps: Mapped[int | None] = mapped_column(SmallInteger)
    last_nps_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    segment_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(Uuid),
        default=list,
        server_default=text("'{}'::uuid[]"),
    )
    recency: Mapped[int | None] = mapped_column(SmallInteger)
    frequency: Mapped[int | None] = mapped_column(SmallInteger)
    monetary: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(String(50))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(30))
    clv: Mapped[Decimal | None] = mapped_column(Numeric)
    clv_currency: Mapped[str | None] = mapped_column(String(3))
    churn_risk: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The loyalty tier orders last announced (``LoyaltyTierChanged``) and when it changed.
    loyalty_tier: Mapped[str | None] = mapped_column(String(20))
    loyalty_tier_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CustomerSpend(Base):
    """Orders that count and their exact sum, per customer and ISO 4217 currency."""

    __tablename__ = "customer_spend"
    __table_args__ = (CheckConstraint("order_count >= 0", name="order_count"),)

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    total: Mapped[Decimal] = mapped_column(Numeric, default=0, server_default=text("0"))


class CustomerOrder(Base):
    """An order as far as the aggregates need it.

    ``counted`` says whether the order is in ``customer_spend`` right now: it is once placed
    with a total, and leaves again when cancelled or refunded. A status change seen before
    its ``OrderPlaced`` creates the row without a total.
    """

    __tablename__ = "customer_order"
    __table_args__ = (Index("ix_customer_order_customer", "customer_id", "placed_at"),)

    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID] = mapped_column()
    total: Mapped[Decimal | None] = mapped_column(Numeric)
    currency: Mapped[str | None] = mapped_column(String(3))
    placed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(40))
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counted: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class CustomerTicket(Base):
    """A support ticket's current status, to count the open ones."""

    __tablename__ = "customer_ticket"
    __table_args__ = (Index("ix_customer_ticket_customer", "customer_id", "status"),)

    ticket_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(20))
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TimelineEntry(Base):
    """One thing that happened to a customer. ``summary`` may hold personal data (the text
    of an interaction): a privacy erase deletes the customer's entries."""

    __tablename__ = "timeline_entry"
    __table_args__ = (
        Index(
            "ix_timeline_entry_customer",
            "customer_id",
            text("occurred_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    customer_id: Mapped[UUID] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    #: The order, interaction, ticket, survey response, segment or merged customer.
    reference_id: Mapped[UUID | None] = mapped_column()
    #: The event it came from (one entry per event).
    event_id: Mapped[UUID | None] = mapped_column(unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
