"""Loyalty points and tiers.

**Earning.** An order earns when it becomes ``paid`` (fully paid; an order with nothing to
pay is paid at once): ``floor(Σ line net * points_per_unit * multiplier)``, where a line's
net is what the customer pays for it before tax (after its discount, coupons and points),
and the multiplier is the product's if the currency's earn rule names the product, else
its category's, else 1. Without an earn rule for the currency: 1 point per unit.

**Reversal.** A refund keeps ``floor(earned * (paid - refunded) / paid)`` of the points
the order earned; the rest is taken back (all of it on a full refund). A cancelled or
fully refunded order gives the points it spent back, and releases its coupons. A reversal
may take a balance below zero when the points were already spent.

**Spending.** Points redeem at the earn rule's ``point_value`` (default: one minor unit
per point). ``UPDATE … SET balance = balance - p WHERE balance >= p``: two orders spending
the same points cannot both succeed; the second answers ``422 insufficient-points``.

**Tiers.** By points earned over the rolling last 12 months (earnings minus reversals):
Silver / Gold / Platinum at admin-set thresholds (default 500 / 2,000 / 5,000). An upgrade
happens as soon as the points are earned. A downgrade only at an evaluation (hourly in the
service, see :func:`run_tier_pass` and :mod:`services.orders.periodic`, or
``POST /loyalty/tiers:evaluate``), and only once the customer has stayed below the
current tier's threshold for ``grace_days`` (default 30), counted from the first
evaluation that found them below. Each change publishes ``LoyaltyTierChanged``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal, cast
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import (
    TIERS,
    LoyaltyAccount,
    LoyaltyEarnRule,
    LoyaltyEntry,
    LoyaltySettings,
    Order,
    Product,
)
from services.orders.money import quantum
from shared.db import Database
from shared.errors import UnprocessableEntity
from shared.events import LoyaltyTierChanged
from shared.messaging import publish

__all__ = [
    "DEFAULT_SETTINGS",
    "EarnRule",
    "InsufficientPoints",
    "TierSettings",
    "earn_for_order",
    "earn_rule",
    "evaluate_batch",
    "evaluate_tiers",
    "points_for",
    "return_points",
    "reverse_for_refund",
    "rolling_points",
    "run_tier_pass",
    "spend_points",
    "tier_for",
    "tier_settings",
]

Tier = Literal["silver", "gold", "platinum"]
ROLLING = timedelta(days=365)
_RANK = {None: 0, "silver": 1, "gold": 2, "platinum": 3}


class InsufficientPoints(UnprocessableEntity):
    slug = "insufficient-points"


@dataclass(frozen=True, slots=True)
class TierSettings:
    silver_points: int
    gold_points: int
    platinum_points: int
    grace_days: int


DEFAULT_SETTINGS = TierSettings(500, 2000, 5000, 30)


@dataclass(frozen=True, slots=True)
class EarnRule:
    currency: str
    points_per_unit: Decimal
    point_value: Decimal
    product_multipliers: dict[str, Decimal] = field(default_factory=dict)
    category_multipliers: dict[str, Decimal] = field(default_factory=dict)

    def multiplier(self, product_id: UUID, category: str | None) -> Decimal:
        if str(product_id) in self.product_multipliers:
            return self.product_multipliers[str(product_id)]
        if category is not None and category in self.category_multipliers:
            return self.category_multipliers[category]
        return Decimal(1)


async def tier_settings(session: AsyncSession) -> TierSettings:
    row = await session.get(LoyaltySettings, 1)
    if row is None:
        return DEFAULT_SETTINGS
    return TierSettings(row.silver_points, row.gold_points, row.platinum_points, row.grace_days)


async def earn_rule(session: AsyncSession, currency: str) -> EarnRule:
    row = await session.get(LoyaltyEarnRule, currency)
    if row is None:
        return EarnRule(currency, Decimal(1), quantum(currency))
    return EarnRule(
        currency,
        row.points_per_unit,
        row.point_value,
        {k: Decimal(v) for k, v in row.product_multipliers.items()},
        {k: Decimal(v) for k, v in row.category_multipliers.items()},
    )


def tier_for(points: int, settings: TierSettings) -> Tier | None:
    if points >= settings.platinum_points:
        return "platinum"
    if points >= settings.gold_points:
        return "gold"
    if points >= settings.silver_points:
        return "silver"
    return None


#: No order earns more (a guard against absurd rules on absurd amounts, far beyond any real
#: order: the ledger's BIGINT would overflow near 9.2e18).
MAX_POINTS_PER_ORDER = 10**15


def points_for(lines: list[tuple[Decimal, Decimal]], rule: EarnRule) -> int:
    """``lines``: (net, multiplier) per line → points earned, rounded down once."""
    exact = sum((net * rule.points_per_unit * m for net, m in lines), Decimal(0))
    return min(int(exact.to_integral_value(ROUND_FLOOR)), MAX_POINTS_PER_ORDER)


async def _account(session: AsyncSession, customer_id: UUID) -> None:
    await session.execute(
        insert(LoyaltyAccount)
        .values(customer_id=customer_id, balance=0)
        .on_conflict_do_nothing(index_elements=[LoyaltyAccount.customer_id])
    )


async def _entry(
    session: AsyncSession,
    customer_id: UUID,
    kind: str,
    points: int,
    order_id: UUID | None,
    now: datetime,
    note: str | None = None,
) -> None:
    session.add(
        LoyaltyEntry(
            customer_id=customer_id,
            kind=kind,
            points=points,
            order_id=order_id,
            note=note,
            created_at=now,
        )
    )
    await _account(session, customer_id)
    await session.execute(
        update(LoyaltyAccount)
        .where(LoyaltyAccount.customer_id == customer_id)
        .values(balance=LoyaltyAccount.balance + points, updated_at=now)
    )
    await session.flush()


async def spend_points(
    session: AsyncSession, customer_id: UUID, points: int, order_id: UUID, now: datetime
) -> None:
    """Take ``points`` off the balance, or ``422 insufficient-points`` (nothing written)."""
    spent = await session.scalar(
        update(LoyaltyAccount)
        .where(LoyaltyAccount.customer_id == customer_id, LoyaltyAccount.balance >= points)
        .values(balance=LoyaltyAccount.balance - points, updated_at=now)
        .returning(LoyaltyAccount.balance)
    )
    if spent is None:
        balance = await session.scalar(
            select(LoyaltyAccount.balance).where(LoyaltyAccount.customer_id == customer_id)
        )
        raise InsufficientPoints(
            f"{points} points asked, the balance is {balance or 0}",
            balance=balance or 0,
            requested=points,
        )
    session.add(
        LoyaltyEntry(
            customer_id=customer_id,
            kind="redeem",
            points=-points,
            order_id=order_id,
            created_at=now,
        )
    )


async def return_points(
    session: AsyncSession, customer_id: UUID, points: int, order_id: UUID, now: datetime
) -> None:
    """Give the points an order spent back (cancelled or fully refunded), once."""
    await _entry(session, customer_id, "redeem_return", points, order_id, now)


async def _order_lines_points(session: AsyncSession, order: Order, rule: EarnRule) -> int:
    ids = {line.product_id for line in order.lines}
    categories = dict(
        (
            await session.execute(select(Product.id, Product.category).where(Product.id.in_(ids)))
        ).all()
    )
    return points_for(
        [
            (
                line.quantity * line.unit_price - line.discount,
                rule.multiplier(line.product_id, categories.get(line.product_id)),
            )
            for line in order.lines
        ],
        rule,
    )


async def earn_for_order(session: AsyncSession, order: Order, now: datetime) -> int:
    """The points a paid order earns (once per order), then an upgrade if they reach one."""
    already = await session.scalar(
        select(LoyaltyEntry.id).where(
            LoyaltyEntry.order_id == order.id, LoyaltyEntry.kind == "earn"
        )
    )
    if already is not None:
        return 0
    points = await _order_lines_points(session, order, await earn_rule(session, order.currency))
    if points > 0:
        await _entry(session, order.customer_id, "earn", points, order.id, now)
        await upgrade(session, order.customer_id, now)
    return points


async def reverse_for_refund(session: AsyncSession, order: Order, now: datetime) -> int:
    """Take back what the refunded share of the order earned (the order row is locked)."""
    earned = await session.scalar(
        select(LoyaltyEntry.points).where(
            LoyaltyEntry.order_id == order.id, LoyaltyEntry.kind == "earn"
        )
    )
    if not earned or order.paid_total <= 0:
        return 0
    reversed_ = -(
        await session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.order_id == order.id, LoyaltyEntry.kind == "earn_reversal"
            )
        )
        or 0
    )
    kept = int(
        (earned * (order.paid_total - order.refunded_total) / order.paid_total).to_integral_value(
            ROUND_FLOOR
        )
    )
    take = earned - kept - reversed_
    if take > 0:
        await _entry(session, order.customer_id, "earn_reversal", -take, order.id, now)
    return take


async def rolling_points(session: AsyncSession, customer_id: UUID, now: datetime) -> int:
    return int(
        await session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.customer_id == customer_id,
                LoyaltyEntry.kind.in_(("earn", "earn_reversal")),
                LoyaltyEntry.created_at > now - ROLLING,
                LoyaltyEntry.created_at <= now,
            )
        )
        or 0
    )


async def _change_tier(
    session: AsyncSession,
    account: LoyaltyAccount,
    tier: Tier | None,
    rolling: int,
    now: datetime,
) -> None:
    previous = cast(Tier | None, account.tier)
    account.tier, account.tier_since, account.below_since = tier, now, None
    account.updated_at = now
    await session.flush()
    await publish(
        session,
        LoyaltyTierChanged(
            customer_id=account.customer_id,
            tier=tier,
            previous_tier=previous,
            direction="upgrade" if _RANK[tier] > _RANK[previous] else "downgrade",
            rolling_points=rolling,
            changed_at=now,
        ),
    )


async def upgrade(session: AsyncSession, customer_id: UUID, now: datetime) -> None:
    """Move up at once when the rolling points reach a higher tier (never down here)."""
    account = await session.scalar(
        select(LoyaltyAccount).where(LoyaltyAccount.customer_id == customer_id).with_for_update()
    )
    if account is None:
        return
    rolling = await rolling_points(session, customer_id, now)
    tier = tier_for(rolling, await tier_settings(session))
    if _RANK[tier] > _RANK[account.tier]:
        await _change_tier(session, account, tier, rolling, now)
    elif _RANK[tier] == _RANK[account.tier]:
        account.below_since = None


async def evaluate_batch(
    session: AsyncSession, now: datetime, *, after: UUID | None = None, batch: int = 500
) -> tuple[dict[str, int], UUID | None]:
    """Evaluate up to ``batch`` accounts after ``after`` (by customer id): upgrades missed,
    and downgrades of customers below their tier's threshold for the grace period. Accounts
    locked by an order in flight are skipped (the next pass takes them). Returns the counts
    and where to go on from (``None``: done)."""
    settings = await tier_settings(session)
    grace = timedelta(days=settings.grace_days)
    counts = {"evaluated": 0, "upgraded": 0, "downgraded": 0, "in_grace": 0}
    statement = select(LoyaltyAccount).order_by(LoyaltyAccount.customer_id).limit(batch)
    if after is not None:
        statement = statement.where(LoyaltyAccount.customer_id > after)
    accounts = list(await session.scalars(statement.with_for_update(skip_locked=True)))
    for account in accounts:
        counts["evaluated"] += 1
        rolling = await rolling_points(session, account.customer_id, now)
        tier = tier_for(rolling, settings)
        if _RANK[tier] > _RANK[account.tier]:
            await _change_tier(session, account, tier, rolling, now)
            counts["upgraded"] += 1
        elif _RANK[tier] < _RANK[account.tier]:
            if account.below_since is None:
                account.below_since = now
            if now - account.below_since >= grace:
                await _change_tier(session, account, tier, rolling, now)
                counts["downgraded"] += 1
            else:
                counts["in_grace"] += 1
        else:
            account.below_since = None
    await session.flush()
    return counts, accounts[-1].customer_id if len(accounts) == batch else None


async def evaluate_tiers(
    session: AsyncSession, now: datetime, *, batch: int = 500
) -> dict[str, int]:
    """Every account, in ``session`` (one transaction): see :func:`evaluate_batch`."""
    total = {"evaluated": 0, "upgraded": 0, "downgraded": 0, "in_grace": 0}
    after: UUID | None = None
    while True:
        counts, after = await evaluate_batch(session, now, after=after, batch=batch)
        for key, n in counts.items():
            total[key] += n
        if after is None:
            return total


async def run_tier_pass(database: Database, now: datetime, *, batch: int = 500) -> dict[str, int]:
    """The service's periodic pass: every account at ``now``, one batch per transaction (so
    it never holds many accounts' locks for long); accounts locked by an order in flight are
    left to the next pass. Replicas may run it side by side: a second evaluation of the same
    account at the same time changes nothing more (the tier change and its event happen
    once, under the account's row lock). Returns the counts of what it did."""
    total = {"evaluated": 0, "upgraded": 0, "downgraded": 0, "in_grace": 0}
    after: UUID | None = None
    while True:
        async with database.session() as session:
            counts, after = await evaluate_batch(session, now, after=after, batch=batch)
        for key, n in counts.items():
            total[key] += n
        if after is None:
            return total


TIER_NAMES: tuple[str, ...] = TIERS
