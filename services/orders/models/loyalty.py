"""Loyalty: the programme's settings, earn rules per currency, accounts and the ledger.

* ``loyalty_settings`` — one row (``id = 1``): tier thresholds in points earned over the
  last 12 months, and the downgrade grace period.
* ``loyalty_earn_rule`` — per currency: points per currency unit, what one point is worth
  when redeemed, and multipliers per product or category.
* ``loyalty_account`` — balance and tier per customer. Spending points is a conditional
  ``UPDATE … WHERE balance >= :points``: two orders spending the same points cannot both
  succeed. A reversal may take the balance below zero (points already spent).
* ``loyalty_entry`` — the ledger: every change of a balance, signed, with its order.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.orders.models.base import Base

TIERS = ("silver", "gold", "platinum")
ENTRY_KINDS = ("earn", "earn_reversal", "redeem", "redeem_return", "adjust")


class LoyaltySettings(Base):
    __tablename__ = "loyalty_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(
            "0 < silver_points AND silver_points < gold_points AND gold_points < platinum_points",
            name="thresholds",
        ),
        CheckConstraint("grace_days >= 0", name="grace_days"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1, autoincrement=False)
    silver_points: Mapped[int] = mapped_column(Integer)
    gold_points: Mapped[int] = mapped_column(Integer)
    platinum_points: Mapped[int] = mapped_column(Integer)
    grace_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LoyaltyEarnRule(Base):
    __tablename__ = "loyalty_earn_rule"
    __table_args__ = (
        CheckConstraint("points_per_unit >= 0", name="points_per_unit"),
        CheckConstraint("point_value > 0", name="point_value"),
    )

    currency: Mapped[str] = mapped_column(CHAR(3), primary_key=True)
    #: Points per unit of the currency spent (net of discounts, before tax).
    points_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 4, asdecimal=True))
    #: Money one point takes off an order when redeemed.
    point_value: Mapped[Decimal] = mapped_column(Numeric(18, 4, asdecimal=True))
    #: ``{"<product id>": "3"}`` and ``{"<category>": "2"}``: decimal strings.
    product_multipliers: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )
    category_multipliers: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LoyaltyAccount(Base):
    __tablename__ = "loyalty_account"
    __table_args__ = (CheckConstraint(f"tier IS NULL OR tier IN {TIERS}", name="tier"),)

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), default=0)
    tier: Mapped[str | None] = mapped_column(String(10))
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Since when the rolling points have been below the current tier's threshold.
    below_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LoyaltyEntry(Base):
    __tablename__ = "loyalty_entry"
    __table_args__ = (
        CheckConstraint(f"kind IN {ENTRY_KINDS}", name="kind"),
        CheckConstraint("points <> 0", name="points"),
        Index("ix_loyalty_entry_customer", "customer_id", "id"),
        # An order earns once, and gives spent points back once.
        Index(
            "uq_loyalty_entry_order_once",
            "order_id",
            "kind",
            unique=True,
            postgresql_where=text("kind IN ('earn', 'redeem', 'redeem_return')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    customer_id: Mapped[UUID]
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[UUID | None]
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
