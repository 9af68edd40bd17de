"""Promotions, their coupon codes, and the discounts applied to orders.

* ``promotion`` — what a discount is worth and when it applies; ``uses`` counts the active
  redemptions (raised by a conditional ``UPDATE … WHERE uses < total_limit``, so a total
  limit holds under parallel orders; lowered again when an order releases its redemption).
* ``coupon_code`` — a code issued to one customer for one promotion (at most one per
  (promotion, customer): issuing is idempotent); ``uses < max_uses`` guards it the same way.
* ``order_discount`` — what a coupon or loyalty points took off one order. For coupons this
  is the redemption row: one per (order, promotion), and a single-use code has at most one
  active row (partial unique index), whatever the application code does.
"""

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import (
    CHAR,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base

PROMOTION_KINDS = ("percentage", "fixed")
DISCOUNT_KINDS = ("coupon", "points")
DISCOUNT_STATUSES = ("active", "released")
_MONEY = Numeric(18, 4, asdecimal=True)


class Promotion(Base):
    __tablename__ = "promotion"
    __table_args__ = (
        CheckConstraint(f"kind IN {PROMOTION_KINDS}", name="kind"),
        CheckConstraint("value > 0 AND (kind <> 'percentage' OR value <= 100)", name="value"),
        CheckConstraint("min_spend >= 0", name="min_spend"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window"),
        CheckConstraint("total_limit IS NULL OR total_limit > 0", name="total_limit"),
        CheckConstraint(
            "per_customer_limit IS NULL OR per_customer_limit > 0", name="per_customer_limit"
        ),
        CheckConstraint("uses >= 0 AND (total_limit IS NULL OR uses <= total_limit)", name="uses"),
        Index("ix_promotion_created", "created_at", "id"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    #: Percent off (``"15"`` = 15 %) or money off in ``currency``.
    value: Mapped[Decimal] = mapped_column(_MONEY)
    currency: Mapped[str] = mapped_column(CHAR(3))
    min_spend: Mapped[Decimal] = mapped_column(_MONEY, server_default=text("0"), default=0)
    #: Only lines of these products or categories are discounted (both empty: every line).
    product_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(Uuid()),
        server_default=text("'{}'::uuid[]"),
        default=list,
    )
    categories: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), server_default=text("'{}'::character varying[]"), default=list
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total_limit: Mapped[int | None] = mapped_column(Integer)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    #: The shared code anyone may type (``None``: only issued codes redeem it).
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CouponCode(Base):
    __tablename__ = "coupon_code"
    __table_args__ = (
        UniqueConstraint("promotion_id", "customer_id", name="uq_coupon_code_recipient"),
        CheckConstraint("max_uses > 0 AND uses >= 0 AND uses <= max_uses", name="uses"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    promotion_id: Mapped[UUID] = mapped_column(ForeignKey("promotion.id", ondelete="CASCADE"))
    customer_id: Mapped[UUID]
    max_uses: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    uses: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderDiscount(Base):
    __tablename__ = "order_discount"
    __table_args__ = (
        CheckConstraint(f"kind IN {DISCOUNT_KINDS}", name="kind"),
        CheckConstraint(f"status IN {DISCOUNT_STATUSES}", name="status"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint(
            "(kind = 'coupon' AND promotion_id IS NOT NULL AND code IS NOT NULL)"
            " OR (kind = 'points' AND points > 0)",
            name="shape",
        ),
        UniqueConstraint("order_id", "promotion_id", name="uq_order_discount_promotion"),
        # The last line of defence for single-use codes: one active redemption each.
        Index(
            "uq_order_discount_single_use_code",
            "code",
            unique=True,
            postgresql_where=text("single_use AND status = 'active'"),
        ),
        Index("ix_order_discount_promotion_customer", "promotion_id", "customer_id"),
    )

    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("order.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    customer_id: Mapped[UUID]
    promotion_id: Mapped[UUID | None] = mapped_column(ForeignKey("promotion.id"))
    code: Mapped[str | None] = mapped_column(String(64))
    single_use: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    points: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(_MONEY)
    status: Mapped[str] = mapped_column(
        String(8), server_default=text("'active'"), default="active"
    )
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
