from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.interactions.models.base import Base


class Interaction(Base):
    """One touchpoint with a customer: a call, an e-mail, a chat, a social mention, a meeting,
    a note, or web/app behaviour (page view, click, search)."""

    __tablename__ = "interaction"
    __table_args__ = (
        # Serves both list orders: a customer's timeline and the global feed, each paged on
        # (occurred_at, id). The first one also answers every lookup by customer_id.
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at", "id"),
        Index("ix_interaction_occurred_at", "occurred_at", "id"),
        # An agent's feed. Behaviour (most rows, and the ingest hot path) has no agent and
        # stays out of this index.
        Index(
            "ix_interaction_agent_id_occurred_at",
            "agent_id",
            "occurred_at",
            "id",
            postgresql_where=text("agent_id IS NOT NULL"),
        ),
        # Item idempotency: a client's (or partner's) event id is stored once per source.
        # Rows without an event id never conflict (NULLs are distinct).
        UniqueConstraint("source", "event_id"),
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
    agent_id: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    #: The kind's typed details (``metadata`` in the API; the attribute name ``metadata`` is
    #: taken by SQLAlchemy's declarative base).
    details: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    #: Who reported it: ``api`` for direct writes, the batch's source, or a partner's name.
    source: Mapped[str] = mapped_column(String(64), server_default="api")
    #: The reporter's own id of the event, for idempotent ingest (unique per source).
    event_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
