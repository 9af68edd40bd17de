from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.orders.models.base import Base
from services.orders.models.promotion import OrderDiscount

ORDER_STATUSES = ("pending", "paid", "fulfilled", "cancelled", "partially_refunded", "refunded")
SALES_CHANNELS = ("online_store", "physical_store", "marketplace", "sales_rep")
_MONEY = Numeric(18, 4, asdecimal=True)


class Order(Base):
    """An order: its lines, money (exact ``NUMERIC``) and where it is in its life."""

    __tablename__ = "order"
    __table_args__ = (
        CheckConstraint(f"status IN {ORDER_STATUSES}", name="status"),
        CheckConstraint(f"channel IN {SALES_CHANNELS}", name="channel"),
        CheckConstraint("total >= 0 AND paid_total >= 0 AND refunded_total >= 0", name="money"),
        CheckConstraint("refunded_total <= paid_total", name="refund_within_paid"),
        CheckConstraint("paid_total <= total", name="paid_within_total"),
        # A partner's order id names one order (per partner): replays and retries find it.
        UniqueConstraint("source", "external_id", name="uq_order_external_id"),
        Index("ix_order_customer_placed", "customer_id", "placed_at", "id"),
        Index("ix_order_placed", "placed_at", "id"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(24), default="pending")
    channel: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(CHAR(3))
    subtotal: Mapped[Decimal] = mapped_column(_MONEY)
    discount_total: Mapped[Decimal] = mapped_column(_MONEY)
    tax_total: Mapped[Decimal] = mapped_column(_MONEY)
    total: Mapped[Decimal] = mapped_column(_MONEY)
    paid_total: Mapped[Decimal] = mapped_column(_MONEY, server_default=text("0"), default=0)
    refunded_total: Mapped[Decimal] = mapped_column(_MONEY, server_default=text("0"), default=0)
    #: The partner system and its order id, for orders that came from one.
    source: Mapped[str | None] = mapped_column(String(50))
    external_id: Mapped[str | None] = mapped_column(String(200))
    #: Personal data of the order (shipping/billing address, contact); anonymised on erase.
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    note: Mapped[str | None] = mapped_column(String(2000))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fulfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    lines: Mapped[list["OrderLine"]] = relationship(
        order_by="OrderLine.position", lazy="selectin", cascade="all, delete-orphan"
    )
    payments: Mapped[list["Payment"]] = relationship(
        order_by="Payment.created_at", lazy="selectin", cascade="all, delete-orphan"
    )
    refunds: Mapped[list["Refund"]] = relationship(
        order_by="Refund.created_at", lazy="selectin", cascade="all, delete-orphan"
    )
    #: Coupons and loyalty points applied (services/orders/promotion).
    discounts: Mapped[list["OrderDiscount"]] = relationship(
        order_by="OrderDiscount.position", lazy="selectin", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class OrderLine(Base):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("discount >= 0 AND discount <= quantity * unit_price", name="discount"),
        CheckConstraint(
            "promotion_discount >= 0 AND promotion_discount <= discount",
            name="promotion_discount",
        ),
    )

    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("order.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[UUID] = mapped_column(ForeignKey("product.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(_MONEY)
    #: Everything taken off the line: the line's own discount plus coupons and points.
    discount: Mapped[Decimal] = mapped_column(_MONEY)
    #: The part of ``discount`` that came from coupons and loyalty points.
    promotion_discount: Mapped[Decimal] = mapped_column(
        _MONEY, server_default=text("0"), default=Decimal(0)
    )
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(6, 4, asdecimal=True))
    tax: Mapped[Decimal] = mapped_column(_MONEY)
    total: Mapped[Decimal] = mapped_column(_MONEY)


class Payment(Base):
    __tablename__ = "payment"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    order_id: Mapped[UUID] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(_MONEY)
    method: Mapped[str] = mapped_column(String(50))
    reference: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Refund(Base):
    __tablename__ = "refund"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    order_id: Mapped[UUID] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(_MONEY)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
