"""Care-plan rules, the ledger of occasions they fired for, and the small projections of other
services' data the rules need (learned from events, never read from their tables)."""

from datetime import date, datetime, time
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base

RULE_TYPES = ("birthday", "holiday", "periodic_revisit", "post_purchase", "low_csat")


class CarePlanRule(Base):
    """An admin-managed rule: on each occasion it creates a task or only publishes an event.

    The parameters are typed columns (not JSON) so the scheduler can use them in SQL; which
    ones a type needs is checked here as well as by the API."""

    __tablename__ = "care_plan_rule"
    __table_args__ = (
        CheckConstraint(
            "type IN ('birthday', 'holiday', 'periodic_revisit', 'post_purchase', 'low_csat')",
            name="type_known",
        ),
        CheckConstraint("action IN ('task', 'event')", name="action_known"),
        CheckConstraint("assign_to IN ('owner', 'fixed')", name="assign_to_known"),
        CheckConstraint(
            "assign_to = 'owner' OR assignee_id IS NOT NULL", name="fixed_has_assignee"
        ),
        CheckConstraint("every_days IS NULL OR every_days > 0", name="every_days_positive"),
        CheckConstraint("days_after IS NULL OR days_after >= 0", name="days_after_not_negative"),
        CheckConstraint(
            "csat_threshold IS NULL OR csat_threshold BETWEEN 1 AND 4", name="csat_threshold_range"
        ),
        CheckConstraint("type <> 'holiday' OR cardinality(dates) > 0", name="holiday_has_dates"),
        CheckConstraint(
            "type <> 'periodic_revisit' OR (every_days IS NOT NULL "
            "AND (segment_id IS NOT NULL OR lifecycle_stage IS NOT NULL))",
            name="revisit_has_period_and_audience",
        ),
        CheckConstraint("type <> 'post_purchase' OR days_after > 0", name="post_purchase_has_days"),
        CheckConstraint(
            "type <> 'low_csat' OR (csat_threshold IS NOT NULL AND days_after IS NOT NULL)",
            name="low_csat_has_threshold",
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    action: Mapped[str] = mapped_column(String(8), server_default="task")
    assign_to: Mapped[str] = mapped_column(String(8), server_default="owner")
    #: The fixed assignee, or (assign_to = owner) the fallback for customers without one.
    assignee_id: Mapped[str | None] = mapped_column(String(200))
    task_title: Mapped[str | None] = mapped_column(String(200))
    #: Local time (the customer's timezone) the task falls due on its occasion's date.
    due_time: Mapped[time] = mapped_column(Time, server_default=text("'09:00:00'"))
    every_days: Mapped[int | None] = mapped_column(Integer)
    days_after: Mapped[int | None] = mapped_column(Integer)
    csat_threshold: Mapped[int | None] = mapped_column(SmallInteger)
    #: Holiday dates: ``MM-DD`` (every year) or ``YYYY-MM-DD`` (once).
    dates: Mapped[list[str] | None] = mapped_column(ARRAY(String(10)))
    segment_id: Mapped[UUID | None]
    lifecycle_stage: Mapped[str | None] = mapped_column(String(30))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")


class CarePlanOccurrence(Base):
    """One occasion a rule fired for a customer. The primary key is the idempotency key of
    the scheduler: replicas and restarts insert with ``ON CONFLICT DO NOTHING``, so an
    occasion creates its task (or publishes its event) once."""

    __tablename__ = "care_plan_occurrence"
    __table_args__ = (Index("ix_care_plan_occurrence_customer_id", "customer_id"),)

    rule_id: Mapped[UUID] = mapped_column(
        ForeignKey("care_plan_rule.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    occurs_on: Mapped[date] = mapped_column(Date, primary_key=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CarePlanCustomer(Base):
    """What the rules need of a customer profile, from customer360's events (owner and team
    are in ``customer_scope``)."""

    __tablename__ = "care_plan_customer"
    __table_args__ = (
        Index("ix_care_plan_customer_birthday_mmdd", "birthday_mmdd"),
        Index("ix_care_plan_customer_lifecycle_stage", "lifecycle_stage"),
    )

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    birthday: Mapped[date | None] = mapped_column(Date)
    #: ``month * 100 + day`` of the birthday: the birthday scan's index.
    birthday_mmdd: Mapped[int | None] = mapped_column(SmallInteger)
    #: IANA name, checked when stored (null: unknown, the scheduler uses UTC).
    timezone: Mapped[str | None] = mapped_column(String(64))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(30))
    lifecycle_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CarePlanSegmentMember(Base):
    """Segment membership, from segmentation's SegmentEntered / SegmentExited."""

    __tablename__ = "care_plan_segment_member"
    __table_args__ = (Index("ix_care_plan_segment_member_customer_id", "customer_id"),)

    segment_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CarePlanOrder(Base):
    """Orders placed, from orders' OrderPlaced (for post-purchase follow-ups)."""

    __tablename__ = "care_plan_order"
    __table_args__ = (
        Index("ix_care_plan_order_placed_at", "placed_at"),
        Index("ix_care_plan_order_customer_id", "customer_id"),
    )

    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID]
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The order's total and currency (campaign reports attribute revenue); null for orders
    #: projected before the total was kept.
    total: Mapped[Decimal | None] = mapped_column(Numeric(18, 4, asdecimal=True))
    currency: Mapped[str | None] = mapped_column(String(3))
