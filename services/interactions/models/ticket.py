from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base


class Ticket(Base):
    """A support case for one customer, with its SLA due times and breach marks."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_customer_id_opened_at", "customer_id", "opened_at", "id"),
        Index("ix_ticket_opened_at", "opened_at", "id"),
        Index("ix_ticket_assignee_id", "assignee_id"),
        Index("ix_ticket_team_id", "team_id"),
        # The SLA scheduler's two scans: only rows that can still breach are indexed.
        Index(
            "ix_ticket_first_response_due",
            "first_response_due_at",
            postgresql_where=text(
                "first_responded_at IS NULL AND first_response_breached_at IS NULL "
                "AND status IN ('open', 'pending')"
            ),
        ),
        Index(
            "ix_ticket_resolution_due",
            "resolution_due_at",
            postgresql_where=text(
                "resolution_breached_at IS NULL AND status IN ('open', 'pending')"
            ),
        ),
        CheckConstraint("status IN ('open', 'pending', 'resolved', 'closed')", name="status_known"),
        CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="priority_known"),
        CheckConstraint(
            "category IN ('complaint', 'question', 'request', 'incident')", name="category_known"
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]
    order_id: Mapped[UUID | None]
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8), server_default="open")
    assignee_id: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_response_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolution_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TicketComment(Base):
    __tablename__ = "ticket_comment"
    __table_args__ = (Index("ix_ticket_comment_ticket_id", "ticket_id", "created_at", "id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    ticket_id: Mapped[UUID] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    author_id: Mapped[str] = mapped_column(String(200))
    author_kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlaPolicy(Base):
    """First-response and resolution targets for one priority."""

    __tablename__ = "sla_policy"
    __table_args__ = (
        CheckConstraint("first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes > 0", name="resolution_positive"),
        CheckConstraint(
            "business_start_hour IS NULL OR (business_start_hour >= 0 AND "
            "business_end_hour <= 24 AND business_start_hour < business_end_hour)",
            name="business_hours_valid",
        ),
    )

    priority: Mapped[str] = mapped_column(String(8), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    #: ISO weekdays (1 = Monday) when business hours apply; null = around the clock.
    business_days: Mapped[list[int] | None] = mapped_column(ARRAY(SmallInteger))
    business_start_hour: Mapped[int | None] = mapped_column(SmallInteger)
    business_end_hour: Mapped[int | None] = mapped_column(SmallInteger)
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
