"""SQL of the analytics: the order history, the scores and the quintile boundaries.

Order writes are upserts keyed by the order id, so applying an event twice leaves the same
row as applying it once (the inbox already drops redeliveries; this makes the effect
idempotent on its own, e.g. for a replay into a fresh inbox).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Row, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.analytics.scoring import (
    NOT_COUNTING,
    Boundaries,
    OrderFacts,
    Scores,
)
from services.segmentation.models import (
    AnalyticsPass,
    CustomerOrder,
    CustomerRedirect,
    CustomerScore,
    RfmBoundary,
    customer_scope,
)
from shared.auth import Principal
from shared.db import driver_connection
from shared.privacy import visible_customers

# The per-customer RFM values of the whole population, in SQL, with exactly the definitions
# of ``scoring`` (counting orders, primary currency, net paid): the batch pass derives the
# quintile cut points from it without loading customers into Python.
_NOT_COUNTING_SQL = ", ".join(f"'{s}'" for s in sorted(NOT_COUNTING))
_VALUES_SQL = f"""
WITH o AS (
    SELECT customer_id, currency, placed_at, paid_total - refunded_total AS net,
           status NOT IN ({_NOT_COUNTING_SQL}) AS counts
    FROM segmentation.customer_orders
    WHERE placed_at IS NOT NULL AND currency IS NOT NULL
), per_currency AS (
    SELECT customer_id, currency, count(*) FILTER (WHERE counts) AS n,
           max(placed_at) FILTER (WHERE counts) AS last_at, sum(net) AS net
    FROM o GROUP BY customer_id, currency
), prim AS (
    SELECT DISTINCT ON (customer_id) customer_id, currency, net
    FROM per_currency WHERE n > 0
    ORDER BY customer_id, n DESC, last_at DESC, currency
), cust AS (
    SELECT customer_id, count(*) AS frequency,
           (max(placed_at) AT TIME ZONE 'UTC')::date AS last_day
    FROM o WHERE counts GROUP BY customer_id
), v AS (
    SELECT c.customer_id, c.frequency, c.last_day, p.currency, p.net
    FROM cust c JOIN prim p USING (customer_id)
)
"""

# Cut point k (1..4) is the value at 1-based position ceil(k*N/5) = (k*N + 4) / 5 in integer
# arithmetic (percentile_disc would compute k/5*N in floating point: 0.6 * 5 = 3.0000000000000004).
_CUTS_SQL = (
    _VALUES_SQL
    + """
, r AS (
    SELECT 'recency' AS dimension, '' AS currency, last_day::text AS value,
           row_number() OVER (ORDER BY last_day) AS rn, count(*) OVER () AS n FROM v
), f AS (
    SELECT 'frequency', '', frequency::text,
           row_number() OVER (ORDER BY frequency), count(*) OVER () FROM v
), m AS (
    SELECT 'monetary', currency, net::text,
           row_number() OVER (PARTITION BY currency ORDER BY net),
           count(*) OVER (PARTITION BY currency) FROM v
), ranked AS (SELECT * FROM r UNION ALL SELECT * FROM f UNION ALL SELECT * FROM m)
SELECT dimension, currency, k, value, n
FROM ranked CROSS JOIN generate_series(1, 4) AS k
WHERE rn = (k * n + 4) / 5
ORDER BY dimension, currency, k
"""
)


#: Whose orders or scores: the customers with ids in a range ``(first, last)`` (the batch
#: pass walks them in id order), or a set of ids (the customers a group of events touched).
Customers = tuple[UUID, UUID] | frozenset[UUID]


def _among(column: Any, customers: Customers) -> Any:
    if isinstance(customers, tuple):
        return column.between(*customers)
    return column.in_(sorted(customers))


# A row made by an earlier status change keeps its (newer) status and money; the customer id
# is kept too: a merge may have re-pointed it since.
_PLACED_SQL = """
INSERT INTO segmentation.customer_orders AS o (order_id, customer_id, total, currency, placed_at)
VALUES ($1, coalesce((SELECT r.survivor_id FROM segmentation.customer_redirects r
                      WHERE r.merged_id = $2), $2), $3, $4, $5)
ON CONFLICT (order_id) DO UPDATE SET total = EXCLUDED.total, currency = EXCLUDED.currency,
    placed_at = EXCLUDED.placed_at, updated_at = now()
RETURNING o.customer_id
"""


@functools.cache
def _status_upsert(columns: tuple[str, ...]) -> Any:
    """The status upsert setting ``columns`` (which of the money fields an event carries),
    built once per combination (an ``excluded`` collection costs more than the round trip)."""
    statement = insert(CustomerOrder)
    return statement.on_conflict_do_update(
        index_elements=[CustomerOrder.order_id],
        set_={**{k: statement.excluded[k] for k in columns}, "updated_at": func.now()},
        # an older status change that arrives late must not undo a newer one
        where=or_(
            CustomerOrder.status_changed_at.is_(None),
            CustomerOrder.status_changed_at <= statement.excluded.status_changed_at,
        ),
    )


class AnalyticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- identity --------------------------------------------------------------------------
    async def resolve(self, customer_id: UUID) -> UUID:
        """The customer an event about ``customer_id`` is about now (after merges)."""
        survivor = await self.session.scalar(
            select(CustomerRedirect.survivor_id).where(CustomerRedirect.merged_id == customer_id)
        )
        return survivor or customer_id

    async def redirect(self, merged_id: UUID, survivor_id: UUID, merged_at: datetime) -> None:
        """Remember the merge; ids that pointed at the duplicate now point at the survivor."""
        await self.session.execute(
            update(CustomerRedirect)
            .where(CustomerRedirect.survivor_id == merged_id)
            .values(survivor_id=survivor_id)
        )
        statement = insert(CustomerRedirect).values(
            merged_id=merged_id, survivor_id=survivor_id, merged_at=merged_at
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerRedirect.merged_id],
                set_={"survivor_id": survivor_id, "merged_at": merged_at},
            )
        )

    async def repoint_orders(self, merged_id: UUID, survivor_id: UUID) -> None:
        await self.session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.customer_id == merged_id)
            .values(customer_id=survivor_id, updated_at=func.now())
        )
        await self.session.execute(
            delete(CustomerScore).where(CustomerScore.customer_id == merged_id)
        )

    async def forget(self, customer_id: UUID) -> None:
        """A privacy erase: the customer's orders, scores and former ids."""
        await self.session.execute(
            delete(CustomerOrder).where(CustomerOrder.customer_id == customer_id)
        )
        await self.session.execute(
            delete(CustomerScore).where(CustomerScore.customer_id == customer_id)
        )
        await self.session.execute(
            delete(CustomerRedirect).where(
                or_(
                    CustomerRedirect.survivor_id == customer_id,
                    CustomerRedirect.merged_id == customer_id,
                )
            )
        )

    # --- order history ---------------------------------------------------------------------
    async def record_placed(
        self,
        order_id: UUID,
        customer_id: UUID,
        *,
        total: Decimal,
        currency: str,
        placed_at: datetime,
    ) -> UUID:
        """Record the order for ``customer_id`` or the survivor of their merges; returns the
        customer the order counts for (an earlier row keeps its own: a merge may have
        re-pointed it). One round trip: this runs for every order."""
        driver = await driver_connection(self.session)
        found: UUID = await driver.fetchval(
            _PLACED_SQL, order_id, customer_id, total, currency, placed_at
        )
        return found

    async def record_status(
        self,
        order_id: UUID,
        customer_id: UUID,
        *,
        status: str,
        changed_at: datetime,
        total: Decimal | None,
        paid_total: Decimal | None,
        refunded_total: Decimal | None,
        currency: str | None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "status_changed_at": changed_at}
        if total is not None:
            values["total"] = total
        if paid_total is not None:
            values["paid_total"] = paid_total
        if refunded_total is not None:
            values["refunded_total"] = refunded_total
        if currency is not None:
            values["currency"] = currency
        await self.session.execute(
            _status_upsert(tuple(values)),
            {"order_id": order_id, "customer_id": customer_id, **values},
        )

    async def orders_of(self, customers: Customers) -> dict[UUID, list[OrderFacts]]:
        """The orders of ``customers``."""
        # Core rows, not ORM objects: a batch pass loads thousands of orders per batch.
        rows = await self.session.execute(
            select(
                CustomerOrder.customer_id,
                CustomerOrder.status,
                CustomerOrder.currency,
                CustomerOrder.placed_at,
                CustomerOrder.paid_total,
                CustomerOrder.refunded_total,
            ).where(_among(CustomerOrder.customer_id, customers))
        )
        found: dict[UUID, list[OrderFacts]] = defaultdict(list)
        for customer_id, status, currency, placed_at, paid, refunded in rows:
            found[customer_id].append(OrderFacts(status, currency, placed_at, paid, refunded))
        return found

    async def customers_after(self, after: UUID | None, limit: int) -> list[UUID]:
        """The next ``limit`` customers with orders, by id (keyset pagination)."""
        statement = select(CustomerOrder.customer_id).distinct().order_by(CustomerOrder.customer_id)
        if after is not None:
            statement = statement.where(CustomerOrder.customer_id > after)
        return list(await self.session.scalars(statement.limit(limit)))

    # --- scores ----------------------------------------------------------------------------
    async def scores_for_update(self, customers: Customers) -> dict[UUID, Row[Any]]:
        """The stored scores of ``customers`` (rows with the table's column names), locked
        until the transaction ends."""
        rows = await self.session.execute(
            select(CustomerScore.__table__)
            .where(_among(CustomerScore.customer_id, customers))
            .order_by(CustomerScore.customer_id)  # one lock order: no deadlocks between passes
            .with_for_update()
        )
        return {row.customer_id: row for row in rows}

    async def save_scores(self, scored: Sequence[tuple[UUID, Scores]], scored_at: datetime) -> None:
        """Upsert many customers' scores in one statement (a batch pass writes thousands)."""
        if not scored:
            return
        rows = [
            {
                "customer_id": customer_id,
                "recency": scores.recency,
                "frequency": scores.frequency,
                "monetary": scores.monetary,
                "rfm_segment": scores.rfm_segment,
                "lifecycle_stage": scores.lifecycle_stage,
                "order_count": scores.order_count,
                "first_order_at": scores.first_order_at,
                "last_order_at": scores.last_order_at,
                "historical_clv": {c: format(a, "f") for c, a in scores.historical_clv.items()},
                "predicted_clv": scores.predicted_clv,
                "clv_currency": scores.clv_currency,
                "churn_risk": scores.churn_risk,
                "scored_at": scored_at,
            }
            for customer_id, scores in scored
        ]
        statement = insert(CustomerScore)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerScore.customer_id],
                set_={k: statement.excluded[k] for k in rows[0] if k != "customer_id"},
            ),
            rows,
        )

    async def delete_scores(self, customer_ids: Sequence[UUID]) -> None:
        if customer_ids:
            await self.session.execute(
                delete(CustomerScore).where(CustomerScore.customer_id.in_(customer_ids))
            )

    async def get_scores(self, customer_id: UUID, principal: Principal) -> CustomerScore | None:
        return (
            await self.session.scalars(
                select(CustomerScore).where(
                    CustomerScore.customer_id == customer_id,
                    visible_customers(principal, CustomerScore.customer_id, customer_scope),
                )
            )
        ).one_or_none()

    async def known_customer(self, customer_id: UUID, principal: Principal) -> bool:
        """Whether a customer event named the customer (and the principal may see them)."""
        found = await self.session.scalar(
            select(customer_scope.c.customer_id).where(
                customer_scope.c.customer_id == customer_id,
                visible_customers(principal, customer_scope.c.customer_id, customer_scope),
            )
        )
        return found is not None

    async def group_counts(self, principal: Principal) -> tuple[dict[str, int], int]:
        """Customers per named RFM group, and how many have orders but no group yet."""
        rows = await self.session.execute(
            select(CustomerScore.rfm_segment, func.count())
            .where(
                CustomerScore.order_count > 0,
                visible_customers(principal, CustomerScore.customer_id, customer_scope),
            )
            .group_by(CustomerScore.rfm_segment)
        )
        counts: dict[str, int] = {}
        unscored = 0
        for segment, n in rows:
            if segment is None:
                unscored = n
            else:
                counts[segment] = n
        return counts, unscored

    # --- batch passes ----------------------------------------------------------------------
    async def start_pass(self, trigger: str, started_at: datetime) -> int:
        pass_id = (
            await self.session.execute(
                insert(AnalyticsPass)
                .values(trigger=trigger, started_at=started_at)
                .returning(AnalyticsPass.id)
            )
        ).scalar_one()
        await self.session.execute(delete(AnalyticsPass).where(AnalyticsPass.id <= pass_id - 100))
        return pass_id

    async def finish_pass(
        self,
        pass_id: int,
        *,
        finished_at: datetime,
        population: int,
        customers_rescored: int,
        scores_published: int,
    ) -> None:
        await self.session.execute(
            update(AnalyticsPass)
            .where(AnalyticsPass.id == pass_id)
            .values(
                finished_at=finished_at,
                population=population,
                customers_rescored=customers_rescored,
                scores_published=scores_published,
            )
        )

    async def latest_pass(self, *, finished: bool = False) -> AnalyticsPass | None:
        statement = select(AnalyticsPass).order_by(AnalyticsPass.id.desc()).limit(1)
        if finished:
            statement = statement.where(AnalyticsPass.finished_at.is_not(None))
        return (await self.session.scalars(statement)).one_or_none()

    # --- boundaries ------------------------------------------------------------------------
    async def boundaries(self) -> tuple[Boundaries, datetime | None]:
        """The stored cut points and when the oldest of them was computed."""
        rows = list(await self.session.scalars(select(RfmBoundary)))
        recency: tuple[date, ...] | None = None
        frequency: tuple[int, ...] | None = None
        monetary: dict[str, tuple[Decimal, ...]] = {}
        for row in rows:
            if row.dimension == "recency":
                recency = tuple(date.fromisoformat(c) for c in row.cuts)
            elif row.dimension == "frequency":
                frequency = tuple(int(c) for c in row.cuts)
            else:
                monetary[row.currency] = tuple(Decimal(c) for c in row.cuts)
        computed_at = min((row.computed_at for row in rows), default=None)
        return Boundaries(recency, frequency, monetary), computed_at

    async def population_cuts(self) -> dict[tuple[str, str], tuple[list[str], int]]:
        """Cut points of the whole population now: (dimension, currency) → (cuts, N)."""
        found: dict[tuple[str, str], tuple[list[str], int]] = {}
        rows = await self.session.execute(text(_CUTS_SQL))
        for dimension, currency, _k, value, n in rows:
            cuts, _ = found.get((dimension, currency), ([], n))
            cuts.append(value)
            found[(dimension, currency)] = (cuts, n)
        return found

    async def replace_boundaries(
        self, cuts: dict[tuple[str, str], tuple[list[str], int]], computed_at: datetime
    ) -> None:
        # Serialise concurrent passes (replicas, an admin's recompute): the later one waits
        # and then writes its own, equally fresh, result.
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('rapport.segmentation.rfm_boundaries'))")
        )
        await self.session.execute(delete(RfmBoundary))
        if cuts:
            await self.session.execute(
                insert(RfmBoundary),
                [
                    {
                        "dimension": dimension,
                        "currency": currency,
                        "cuts": values,
                        "population": n,
                        "computed_at": computed_at,
                    }
                    for (dimension, currency), (values, n) in cuts.items()
                ],
            )
