from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base


class Interaction(Base):
    """One touchpoint with a customer (minimal in the foundation; the interactions issue
    adds tickets, surveys and tasks beside it)."""

    __tablename__ = "interaction"
    __table_args__ = (
        # Serves both list orders: a customer's timeline and the global feed, each paged on
        # (occurred_at, id). The first one also answers every lookup by customer_id.
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at", "id"),
        Index("ix_interaction_occurred_at", "occurred_at", "id"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction_known"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    # Another service's id: no foreign key across schemas (the services may live in
    # different databases).
    customer_id: Mapped[UUID]
    # Plain strings, validated by the API: new channels and kinds need no migration.
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
