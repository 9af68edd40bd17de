from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, DateTime, Index, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base

PARTNER_EVENT_KINDS = ("created", "paid", "cancelled", "refunded")
PARTNER_EVENT_STATUSES = ("parked", "applied", "failed")


class PartnerEvent(Base):
    """One partner order webhook as orders understood it: applied, parked until it can be
    (its order is not there yet, or not paid yet), or failed.

    ``(source, external_order_id, kind, event_ref)`` names one partner action, so a replayed
    or re-sent webhook finds its row and stores nothing new. ``payload`` is kept only while
    the row is parked (then cleared: the order holds what matters).
    """

    __tablename__ = "partner_event"
    __table_args__ = (
        CheckConstraint(f"kind IN {PARTNER_EVENT_KINDS}", name="kind"),
        CheckConstraint(f"status IN {PARTNER_EVENT_STATUSES}", name="status"),
        UniqueConstraint(
            "source", "external_order_id", "kind", "event_ref", name="uq_partner_event_action"
        ),
        Index(
            "ix_partner_event_parked",
            "source",
            "external_order_id",
            postgresql_where=text("status = 'parked'"),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    source: Mapped[str] = mapped_column(String(50))
    external_order_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    #: The partner's id of this action (payment or refund id), ``""`` for one-per-order kinds.
    event_ref: Mapped[str] = mapped_column(String(200))
    webhook_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str | None] = mapped_column(String(1000))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    #: When the partner says the action happened: parked actions are applied in this order.
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    order_id: Mapped[UUID | None]
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
