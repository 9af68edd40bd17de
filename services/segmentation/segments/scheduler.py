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

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import delete, select, update

from services.segmentation.features.repository import CustomerFeaturesRepository
from services.segmentation.models import MAX_WINDOW_DAYS, CustomerEvent, CustomerFeatures
from services.segmentation.segments.membership import reevaluate
from shared.db import Database

__all__ = ["MembershipScheduler", "membership_scheduler_lifespan"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MembershipScheduler:
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
        self._task: asyncio.Task[None] | None = None

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

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                checked, changed = await self.run_once()
                if checked:
                    logger.info("re-checked %d customers, %d membership changes", checked, changed)
            except Exception as exc:  # the database may be down for a while: try next time
                logger.warning("membership scheduler pass failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="membership-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


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
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
