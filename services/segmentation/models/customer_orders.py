from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import DateTime, Index, Numeric, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from services.segmentation.models.base import Base

_MONEY = Numeric(18, 4, asdecimal=True)


class CustomerOrder(Base):
    """One order of a customer, as segmentation learnt it from order events.

    The analytics (RFM, lifecycle, CLV, churn) are computed from these rows. Keyed by the
    order id, so every write is an idempotent upsert: an event applied twice leaves the row
    as applying it once did. ``placed_at`` stays ``NULL`` while only status changes of the
    order have been seen (such an order is not scored until its ``OrderPlaced`` arrives);
    ``status_changed_at`` keeps a late, older status change from overwriting a newer one.
    """

    __tablename__ = "customer_orders"
    __table_args__ = (Index("ix_customer_orders_customer_id", "customer_id"),)

    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(24), server_default=text("'pending'"))
    currency: Mapped[str | None] = mapped_column(String(3))
    total: Mapped[Decimal | None] = mapped_column(_MONEY)
    paid_total: Mapped[Decimal] = mapped_column(_MONEY, server_default=text("0"))
    refunded_total: Mapped[Decimal] = mapped_column(_MONEY, server_default=text("0"))
    placed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
