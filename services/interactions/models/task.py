from datetime import date, datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base


class Task(Base):
    """A follow-up for one customer: made by hand or by a care-plan rule."""

    __tablename__ = "task"
    __table_args__ = (
        # The list's order (due first) and its due-range filter.
        Index("ix_task_due_at", "due_at", "id"),
        Index("ix_task_assignee_id", "assignee_id", "due_at", "id"),
        Index("ix_task_customer_id", "customer_id", "due_at", "id"),
        Index("ix_task_rule_id", "rule_id"),
        # The TaskDue scan: only open tasks whose due time has not been announced yet.
        Index(
            "ix_task_due_pending",
            "due_at",
            postgresql_where=text("status = 'open' AND due_notified_at IS NULL"),
        ),
        CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status_known"),
        CheckConstraint("source IN ('manual', 'care_plan')", name="source_known"),
        CheckConstraint(
            "(source = 'care_plan') = (occurs_on IS NOT NULL)", name="care_plan_has_occasion"
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]
    assignee_id: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    source: Mapped[str] = mapped_column(String(10), server_default="manual")
    #: The care-plan rule that made it (kept as history when the rule is deleted: SET NULL).
    rule_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("care_plan_rule.id", ondelete="SET NULL")
    )
    rule_type: Mapped[str | None] = mapped_column(String(20))
    #: The care-plan occasion (customer's local date), e.g. the birthday it greets.
    occurs_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: When ``TaskDue`` was queued for the current ``due_at`` (null: not yet).
    due_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str | None] = mapped_column(String(200))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
