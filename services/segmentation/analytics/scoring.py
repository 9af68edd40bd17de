"""The analytics of one customer, as pure functions of their orders, the boundaries and a clock.

Everything here is deterministic and free of I/O, so the numbers can be checked by hand
(tests/services/segmentation/test_analytics_scoring.py does). Definitions:

**Orders that count.** An order counts once its ``OrderPlaced`` has been seen, unless it is
``cancelled`` or (fully) ``refunded``. Counting orders give *frequency* (how many) and
*recency* (the UTC date of the latest). Money is always *net paid*: ``paid_total -
refunded_total`` of every seen order (a pending, unpaid order adds 0).

**Currencies.** Amounts in different currencies are never added or compared (no event carries
exchange rates). Each customer has a *primary currency*: the one of most counting orders
(ties: the one of the latest counting order, then alphabetical). Monetary (M) is the net paid
in the primary currency, scored only against customers with the same primary currency; the
predictive CLV is in the primary currency too. Historical CLV is kept for every currency.

**Quintiles (R, F, M, 1-5).** Population-relative: for a dimension with population values
``v`` (sorted ascending, ``N`` of them), the *k*-th cut point (k = 1..4) is the value at
1-based position ``ceil(k*N/5)``; a value scores ``1 + #{k : value > cut_k}``. For a member
of the population this equals ``1 + floor(5·below/N)`` where ``below`` counts the values
strictly smaller than it, so **ties always get the same score**, the lowest value scores 1,
and with N distinct values each quintile holds N/5 of them. Higher is better on every
dimension: recency compares last-order *dates* (a later date is a higher value, so R = 5 is
the most recent fifth), frequency compares counting-order counts, monetary net paid. Cut
points come from the last batch pass (see :mod:`.service`), so between passes a customer is
placed against slightly stale boundaries; see the README for the staleness bound.

**Named RFM groups.** From R and F only, on the 5x5 R-by-F grid widely reproduced in public RFM
material (e.g. the ``seg_map`` table of the Kaggle/"RFM analysis" notebooks: ``[1-2][1-2]``
hibernating, ``[1-2][3-4]`` at risk, ``[1-2]5`` can't lose, ``3[1-2]`` about to sleep,
``33`` need attention, ``[3-4][4-5]`` loyal, ``41`` promising, ``51`` new, ``[4-5][2-3]``
potential loyalists, ``5[4-5]`` champions), with the 11th group of the Putler list, *Lost*,
taken as the bottom cell R = 1, F = 1 (the rest of ``[1-2][1-2]`` stays hibernating). See
:data:`RFM_GRID` for the full table.

**Lifecycle stage** (thresholds are settings), first match wins:
``prospect`` (no counting order) → ``churned`` (more than ``lifecycle_churned_days`` days
since the last counting order) → ``at_risk`` (more than ``lifecycle_at_risk_days``) →
``loyal`` (at least ``lifecycle_loyal_orders`` counting orders) → ``repeat`` (2 or more) →
``first_time``.

**Churn risk** in [0, 1], from the customer's own rhythm: the mean interval between counting
orders ``I = (last - first) / (n - 1)`` days (at least 1 day; ``churn_default_interval_days``
when n = 1); the overdue ratio ``x = (now - last) / I``; then
``risk = clamp((x - 1) / (K - 1), 0, 1)`` with ``K = churn_full_risk_ratio`` (default 3):
nobody is at risk before their usual interval has passed, the risk grows linearly with every
further interval and is 1 at K intervals. Rounded half-up to 2 decimals (so a rescoring
publishes only when the risk moved by a visible step).

**CLV.** *Historical*: net paid per currency. *Predictive* (primary currency), the classic
"average order value * purchase frequency * lifespan" estimate, discounted by churn risk
and added to what was already paid::

    AOV        = net paid over counting orders in the primary currency / their number
    per_year   = 365 / I                                     (I as for churn risk)
    predicted  = historical[primary] + AOV * per_year * clv_horizon_years * (1 - risk)

rounded half-up to cents. A churned customer (risk 1) is worth what they already paid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, TypeVar

__all__ = [
    "LIFECYCLE_STAGES",
    "RFM_GRID",
    "RFM_GROUPS",
    "Boundaries",
    "OrderFacts",
    "Scores",
    "ScoringPolicy",
    "cut_points",
    "quintile",
    "rfm_group",
    "score_customer",
]

Dimension = Literal["recency", "frequency", "monetary"]
DIMENSIONS: tuple[Dimension, ...] = ("recency", "frequency", "monetary")

#: The eleven named groups, best first, as published (``rfm_segment``) and counted.
RFM_GROUPS: tuple[str, ...] = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
)
RFM_LABELS: dict[str, str] = {
    "champions": "Champions",
    "loyal": "Loyal",
    "potential_loyalist": "Potential Loyalist",
    "new": "New",
    "promising": "Promising",
    "need_attention": "Need Attention",
    "about_to_sleep": "About to Sleep",
    "at_risk": "At Risk",
    "cant_lose_them": "Can't Lose Them",
    "hibernating": "Hibernating",
    "lost": "Lost",
}

#: ``RFM_GRID[r - 1][f - 1]`` is the group of R = r, F = f. Rows: R 1..5; columns: F 1..5.
RFM_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "hibernating", "at_risk", "at_risk", "cant_lose_them"),  # R = 1
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"),  # R = 2
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),  # R = 3
    ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),  # R = 4
    ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),  # R = 5
)

LIFECYCLE_STAGES: tuple[str, ...] = (
    "prospect",
    "first_time",
    "repeat",
    "loyal",
    "at_risk",
    "churned",
)

#: Statuses after which an order no longer counts as a purchase.
NOT_COUNTING = frozenset({"cancelled", "refunded"})
_DAY_S = Decimal(86_400)
T = TypeVar("T", int, Decimal, date)
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What scoring needs of one order (a ``customer_orders`` row)."""

    status: str
    currency: str | None
    placed_at: datetime | None
    paid_total: Decimal
    refunded_total: Decimal

    @property
    def seen(self) -> bool:
        return self.placed_at is not None and self.currency is not None

    @property
    def counts(self) -> bool:
        return self.seen and self.status not in NOT_COUNTING

    @property
    def net(self) -> Decimal:
        return self.paid_total - self.refunded_total


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """The documented thresholds (from the service's settings)."""

    at_risk_days: int = 90
    churned_days: int = 365
    loyal_orders: int = 4
    default_interval_days: Decimal = Decimal(90)
    full_risk_ratio: Decimal = Decimal(3)
    clv_horizon_years: Decimal = Decimal(3)


@dataclass(frozen=True, slots=True)
class Boundaries:
    """Cut points per dimension (monetary: per currency), as loaded from ``rfm_boundaries``."""

    recency: tuple[date, ...] | None = None
    frequency: tuple[int, ...] | None = None
    monetary: Mapping[str, tuple[Decimal, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    recency: int | None
    frequency: int | None
    monetary: int | None
    rfm_segment: str | None
    lifecycle_stage: str
    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    historical_clv: dict[str, Decimal]
    predicted_clv: Decimal | None
    clv_currency: str | None
    churn_risk: Decimal | None

    def published(self) -> tuple[object, ...]:
        """What :class:`~shared.events.CustomerScored` carries: a change here is published."""
        return (
            self.recency,
            self.frequency,
            self.monetary,
            self.rfm_segment,
            self.lifecycle_stage,
            self.predicted_clv,
            self.clv_currency,
            self.churn_risk,
        )


def cut_points(values: Iterable[T]) -> tuple[T, ...] | None:
    """The four quintile cut points of a population (``None`` when it is empty).

    The k-th is the value at 1-based position ``ceil(k*N/5)`` of the sorted values; integer
    arithmetic, so no float rounding can move a boundary.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    return tuple(ordered[(k * n + 4) // 5 - 1] for k in range(1, 5))


def quintile(value: T, cuts: Sequence[T] | None) -> int | None:
    """``1 + #{k : value > cut_k}``; ``None`` without boundaries."""
    if cuts is None:
        return None
    return 1 + sum(1 for cut in cuts if value > cut)


def rfm_group(recency: int | None, frequency: int | None) -> str | None:
    if recency is None or frequency is None:
        return None
    return RFM_GRID[recency - 1][frequency - 1]


def _days(delta_seconds: float) -> Decimal:
    return Decimal(str(delta_seconds)) / _DAY_S


def primary_currency(orders: Sequence[OrderFacts]) -> str | None:
    """The currency of most counting orders; ties: latest order's, then alphabetical."""
    counts: dict[str, tuple[int, datetime]] = {}
    for o in orders:
        if o.counts:
            assert o.currency is not None
            assert o.placed_at is not None
            n, last = counts.get(o.currency, (0, o.placed_at))
            counts[o.currency] = (n + 1, max(last, o.placed_at))
    if not counts:
        return None
    # max by (count, latest) and, among equals, the alphabetically first currency
    return min(counts, key=lambda c: (-counts[c][0], -counts[c][1].timestamp(), c))


def monetary_value(orders: Sequence[OrderFacts], currency: str) -> Decimal:
    """Net paid over every seen order in ``currency`` (the M value)."""
    return sum((o.net for o in orders if o.seen and o.currency == currency), Decimal(0))


def _placed_at(order: OrderFacts) -> datetime:
    assert order.placed_at is not None
    return order.placed_at


def recency_day(last_order_at: datetime) -> date:
    return last_order_at.astimezone(UTC).date()


def score_customer(
    orders: Sequence[OrderFacts],
    boundaries: Boundaries,
    now: datetime,
    policy: ScoringPolicy,
) -> Scores:
    historical: dict[str, Decimal] = {}
    for o in orders:
        if o.seen:
            assert o.currency is not None
            historical[o.currency] = historical.get(o.currency, Decimal(0)) + o.net
    counting = sorted((o for o in orders if o.counts), key=_placed_at)
    if not counting:
        return Scores(
            recency=None,
            frequency=None,
            monetary=None,
            rfm_segment=None,
            lifecycle_stage="prospect",
            order_count=0,
            first_order_at=None,
            last_order_at=None,
            historical_clv=historical,
            predicted_clv=None,
            clv_currency=None,
            churn_risk=None,
        )
    first = counting[0].placed_at
    last = counting[-1].placed_at
    assert first is not None
    assert last is not None
    n = len(counting)
    currency = primary_currency(counting)
    assert currency is not None

    recency = quintile(recency_day(last), boundaries.recency)
    frequency = quintile(n, boundaries.frequency)
    monetary = quintile(
        monetary_value(orders, currency),
        (boundaries.monetary or {}).get(currency),
    )

    since_last = _days((now - last).total_seconds())
    if n >= 2:
        interval = max(_days((last - first).total_seconds()) / (n - 1), Decimal(1))
    else:
        interval = policy.default_interval_days
    overdue = since_last / interval
    risk = min(max((overdue - 1) / (policy.full_risk_ratio - 1), Decimal(0)), Decimal(1))
    risk = risk.quantize(_CENT, ROUND_HALF_UP)

    in_primary = [o for o in counting if o.currency == currency]
    aov = sum((o.net for o in in_primary), Decimal(0)) / len(in_primary)
    per_year = Decimal(365) / interval
    future = aov * per_year * policy.clv_horizon_years * (1 - risk)
    predicted = (historical.get(currency, Decimal(0)) + future).quantize(_CENT, ROUND_HALF_UP)

    if since_last > policy.churned_days:
        stage = "churned"
    elif since_last > policy.at_risk_days:
        stage = "at_risk"
    elif n >= policy.loyal_orders:
        stage = "loyal"
    elif n >= 2:
        stage = "repeat"
    else:
        stage = "first_time"

    return Scores(
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        rfm_segment=rfm_group(recency, frequency),
        lifecycle_stage=stage,
        order_count=n,
        first_order_at=first,
        last_order_at=last,
        historical_clv=historical,
        predicted_clv=predicted,
        clv_currency=currency,
        churn_risk=risk,
    )
