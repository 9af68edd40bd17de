"""The membership scheduler: re-evaluates customers whose answer may change by time alone.

``customer_features.recheck_at`` holds, per customer, the next instant at which a
time-relative rule (``within_last``, ``older_than``, ``performed … within_days``, rolling
order windows) may flip for them; it is computed whenever the customer is evaluated. A pass
takes the rows whose instant has come (indexed, ``FOR UPDATE SKIP LOCKED`` so replicas share
the work), recounts their rolling windows, re-evaluates them against every dynamic segment
and stores their next instant — no full scan, however many customers there are. It also
trims the event log to the longest window a rule may use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import delete, select, update

from services.segmentation.features.repository import CustomerFeaturesRepository
from services.segmentation.models import MAX_WINDOW_DAYS, CustomerEvent, CustomerFeatures
from services.segmentation.segments.membership import reevaluate
from shared.db import Database
from shared.periodic import Periodic, running

__all__ = ["MembershipScheduler", "membership_scheduler_lifespan"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MembershipScheduler(Periodic):
    name = "membership-scheduler"

    def __init__(
        self,
        database: Database,
        *,
        now: Callable[[], datetime] = _utcnow,
        interval_s: float = 60.0,
        batch_size: int = 500,
    ) -> None:
        self.database = database
        self.now = now
        self.interval_s = interval_s
        self.batch_size = batch_size

    async def run_once(self) -> tuple[int, int]:
        """One pass at ``now()``: (customers re-evaluated, membership changes published)."""
        now = self.now()
        checked = changed = 0
        while True:
            async with self.database.session() as session:
                due = list(
                    (
                        await session.scalars(
                            select(CustomerFeatures.customer_id)
                            .where(CustomerFeatures.recheck_at <= now)
                            .order_by(CustomerFeatures.recheck_at)
                            .limit(self.batch_size)
                            .with_for_update(skip_locked=True)
                        )
                    ).all()
                )
                if due:
                    await CustomerFeaturesRepository(session).refresh_windows(due, now)
                    await session.execute(
                        update(CustomerFeatures)
                        .where(CustomerFeatures.customer_id.in_(due))
                        .values(recheck_at=None)
                    )
                    changed += len(await reevaluate(session, due, None, now))
            checked += len(due)
            if len(due) < self.batch_size:
                break
        async with self.database.session() as session:
            horizon = now - timedelta(days=MAX_WINDOW_DAYS + 1)
            old = select(CustomerEvent.id).where(CustomerEvent.occurred_at < horizon).limit(10_000)
            await session.execute(delete(CustomerEvent).where(CustomerEvent.id.in_(old)))
        return checked, changed

    def report(self, result: tuple[int, int]) -> str | None:
        checked, changed = result
        return f"re-checked {checked} customers, {changed} membership changes" if checked else None


@asynccontextmanager
async def membership_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    if not settings.membership_scheduler_enabled:
        yield
        return
    scheduler = MembershipScheduler(
        app.state.database, interval_s=settings.membership_scheduler_interval_s
    )
    app.state.membership_scheduler = scheduler
    async with running(scheduler):
        yield
