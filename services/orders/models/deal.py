from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base

DEAL_STATUSES = ("open", "won", "lost")


class PipelineStage(Base):
    """A stage of the sales pipeline (admin-configured), in ``position`` order, with the
    probability that a deal in it is won — what weights the pipeline and the forecast."""

    __tablename__ = "pipeline_stage"
    __table_args__ = (
        CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),
        CheckConstraint("position >= 0", name="position_not_negative"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    probability: Mapped[Decimal] = mapped_column(Numeric(5, 4, asdecimal=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Deal(Base):
    """An opportunity: what may be sold to a customer, by whom, and how far it got."""

    __tablename__ = "deal"
    __table_args__ = (
        CheckConstraint(f"status IN {DEAL_STATUSES}", name="status"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        CheckConstraint("(status = 'open') = (closed_at IS NULL)", name="closed_when_not_open"),
        Index("ix_deal_customer", "customer_id"),
        Index("ix_deal_owner_status", "owner_id", "status"),
        Index("ix_deal_stage_open", "stage_id", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]
    title: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4, asdecimal=True))
    currency: Mapped[str] = mapped_column(CHAR(3))
    owner_id: Mapped[str] = mapped_column(String(200))
    stage_id: Mapped[UUID] = mapped_column(ForeignKey("pipeline_stage.id"))
    status: Mapped[str] = mapped_column(String(8), default="open", server_default="open")
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    order_id: Mapped[UUID | None] = mapped_column(ForeignKey("order.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __mapper_args__ = {"version_id_col": version}


class DealStageChange(Base):
    """One step of a deal's history: from which stage/status to which, who, when. The first
    row (``from_stage_id`` null) is the deal's creation."""

    __tablename__ = "deal_stage_change"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    deal_id: Mapped[UUID] = mapped_column(ForeignKey("deal.id", ondelete="CASCADE"), index=True)
    from_stage_id: Mapped[UUID | None] = mapped_column(ForeignKey("pipeline_stage.id"))
    to_stage_id: Mapped[UUID] = mapped_column(ForeignKey("pipeline_stage.id"))
    from_status: Mapped[str | None] = mapped_column(String(8))
    to_status: Mapped[str] = mapped_column(String(8))
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
