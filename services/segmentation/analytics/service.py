"""Scoring customers: one at a time on their order events, and everyone in a batch pass.

*Incremental*: every order event of a customer rescores that customer against the stored
quintile boundaries (:meth:`AnalyticsService.rescore`). When no boundaries exist yet for a
dimension (a fresh install, or the first order in a new currency) they are computed on the
spot, once.

*Batch pass* (:class:`Recompute`): recompute the boundaries from the whole population, then
rescore every customer with orders in batches of ``batch_size`` (one transaction each, rows
locked in id order), so that time alone moves recency, lifecycle stage and churn risk, and the
population-relative R, F, M follow the new boundaries. The scheduler runs it every
``analytics_recompute_interval_s``; ``POST /analytics:recompute`` runs it on demand.

Staleness: boundaries are at most one interval old (default 1 h) plus the length of a pass;
a customer without new orders is rescored only by the pass, so their time-driven values
(R, stage, churn, predicted CLV) may lag by the same bound. Scores of a customer with a new
order are fresh against the current boundaries.

``CustomerScored`` is published (outbox, same transaction) only when a published value
changes, so a pass over an unchanged population publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.analytics.repository import AnalyticsRepository, Customers
from services.segmentation.analytics.scoring import (
    Scores,
    ScoringPolicy,
    score_customer,
)
from services.segmentation.config import Settings
from shared.db import Database
from shared.events import CustomerScored
from shared.messaging import publish

__all__ = ["AnalyticsService", "Clock", "Recompute", "RecomputeResult", "policy_from", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def policy_from(settings: Settings) -> ScoringPolicy:
    return ScoringPolicy(
        at_risk_days=settings.lifecycle_at_risk_days,
        churned_days=settings.lifecycle_churned_days,
        loyal_orders=settings.lifecycle_loyal_orders,
        default_interval_days=settings.churn_default_interval_days,
        full_risk_ratio=settings.churn_full_risk_ratio,
        clv_horizon_years=settings.clv_horizon_years,
    )


def _stored(row: Row[Any] | None) -> tuple[object, ...] | None:
    if row is None:
        return None
    return (
        row.recency,
        row.frequency,
        row.monetary,
        row.rfm_segment,
        row.lifecycle_stage,
        row.predicted_clv,
        row.clv_currency,
        row.churn_risk,
    )


def _stored_rest(row: Row[Any] | None) -> tuple[object, ...] | None:
    if row is None:
        return None
    return (
        row.order_count,
        row.first_order_at,
        row.last_order_at,
        {c: str(a) for c, a in row.historical_clv.items()},
    )


def _rest(scores: Scores) -> tuple[object, ...]:
    return (
        scores.order_count,
        scores.first_order_at,
        scores.last_order_at,
        {c: format(a, "f") for c, a in scores.historical_clv.items()},
    )


class AnalyticsService:
    def __init__(self, session: AsyncSession, policy: ScoringPolicy, now: Clock = utcnow) -> None:
        self.session = session
        self.repo = AnalyticsRepository(session)
        self.policy = policy
        self.now = now

    async def recompute_boundaries(self) -> int:
        """New cut points from the whole population; returns its size (customers)."""
        cuts = await self.repo.population_cuts()
        await self.repo.replace_boundaries(cuts, self.now())
        return max(
            (n for (dimension, _), (_, n) in cuts.items() if dimension == "recency"), default=0
        )

    async def rescore(self, *customer_ids: UUID) -> int:
        """Score these customers now (on their order events); returns events published."""
        return await self._rescore(frozenset(customer_ids))

    async def rescore_range(self, first: UUID, last: UUID) -> int:
        """Score every customer with an id in ``[first, last]`` now (the batch pass walks
        customers in id order: a range condition is cheaper than a 1,000-value IN list)."""
        return await self._rescore((first, last))

    async def _rescore(self, customers: Customers) -> int:
        """Publish ``CustomerScored`` for each customer whose published values changed;
        returns how many. A customer with stored scores but no orders left loses them."""
        stored = await self.repo.scores_for_update(customers)
        orders = await self.repo.orders_of(customers)
        boundaries, _ = await self.repo.boundaries()
        now = self.now()
        scored = {c: score_customer(o, boundaries, now, self.policy) for c, o in orders.items()}
        if any(_lacks_boundaries(s) for s in scored.values()):
            # a fresh install, or the first customer whose main currency has no monetary
            # boundaries yet: compute them from the population once, then score again
            await self.recompute_boundaries()
            boundaries, _ = await self.repo.boundaries()
            scored = {c: score_customer(o, boundaries, now, self.policy) for c, o in orders.items()}
        events: list[CustomerScored] = []
        to_save: list[tuple[UUID, Scores]] = []
        for customer_id, scores in sorted(scored.items()):
            row = stored.get(customer_id)
            changed = scores.published() != _stored(row)
            if changed or _rest(scores) != _stored_rest(row):
                to_save.append((customer_id, scores))
            if changed:
                events.append(
                    CustomerScored(
                        customer_id=customer_id,
                        recency=scores.recency,
                        frequency=scores.frequency,
                        monetary=scores.monetary,
                        rfm_segment=scores.rfm_segment,
                        lifecycle_stage=scores.lifecycle_stage,
                        clv=scores.predicted_clv,
                        clv_currency=scores.clv_currency,
                        churn_risk=float(scores.churn_risk)
                        if scores.churn_risk is not None
                        else None,
                        scored_at=now,
                    )
                )
        orphans = [c for c in stored if c not in orders]
        await self.repo.delete_scores(orphans)
        await self.repo.save_scores(to_save, now)
        await publish(self.session, *events)
        return len(events)


def _lacks_boundaries(scores: Scores) -> bool:
    """Has orders that count, but no boundaries to place them against."""
    return scores.order_count > 0 and (scores.recency is None or scores.monetary is None)


@dataclass(frozen=True, slots=True)
class RecomputeResult:
    ran: bool
    computed_at: datetime | None
    population: int
    customers_rescored: int
    scores_published: int


class Recompute:
    """The bounded batch pass (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        policy: ScoringPolicy,
        *,
        now: Clock = utcnow,
        batch_size: int = 1000,
        interval_s: float = 3600.0,
    ) -> None:
        self.database = database
        self.policy = policy
        self.now = now
        self.batch_size = batch_size
        self.interval_s = interval_s

    async def due(self) -> bool:
        """Whether the latest pass (any replica's, or requested) started an interval ago."""
        async with self.database.session() as session:
            latest = await AnalyticsRepository(session).latest_pass()
        return latest is None or (self.now() - latest.started_at).total_seconds() >= (
            self.interval_s
        )

    async def run_once(
        self, *, force: bool = True, trigger: Literal["schedule", "request"] = "request"
    ) -> RecomputeResult:
        if not force and not await self.due():
            return RecomputeResult(False, None, 0, 0, 0)
        computed_at = self.now()
        async with self.database.session() as session:
            pass_id = await AnalyticsRepository(session).start_pass(trigger, computed_at)
        async with self.database.session() as session:
            population = await AnalyticsService(
                session, self.policy, lambda: computed_at
            ).recompute_boundaries()
        rescored = published = 0
        after: UUID | None = None
        while True:
            async with self.database.session() as session:
                ids = await AnalyticsRepository(session).customers_after(after, self.batch_size)
                if ids:
                    service = AnalyticsService(session, self.policy, self.now)
                    published += await service.rescore_range(ids[0], ids[-1])
            rescored += len(ids)
            if len(ids) < self.batch_size:
                break
            after = ids[-1]
        async with self.database.session() as session:
            await AnalyticsRepository(session).finish_pass(
                pass_id,
                finished_at=self.now(),
                population=population,
                customers_rescored=rescored,
                scores_published=published,
            )
        return RecomputeResult(True, computed_at, population, rescored, published)
