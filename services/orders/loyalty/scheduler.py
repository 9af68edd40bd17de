"""The tier evaluation pass, run periodically inside the orders service.

Upgrades happen as points are earned; downgrades need time to pass (the grace period), so
something must look again: every ``ORDERS_LOYALTY_EVALUATION_INTERVAL_S`` (default hourly)
each account is evaluated, one batch per transaction, accounts locked by an order in flight
skipped until the next pass. Replicas may run it side by side: a second evaluation of the
same account at the same time changes nothing more (the tier change and its event happen
once, under the account's row lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

from fastapi import FastAPI

from services.orders.loyalty.service import evaluate_batch
from shared.db import Database

__all__ = ["TierScheduler", "tier_scheduler_lifespan"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TierScheduler:
    def __init__(
        self,
        database: Database,
        *,
        now: Callable[[], datetime] = _utcnow,
        interval_s: float = 3600.0,
        batch_size: int = 500,
    ) -> None:
        self.database = database
        self.now = now
        self.interval_s = interval_s
        self.batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        """One pass over every account at ``now()``; the counts of what it did."""
        now = self.now()
        total = {"evaluated": 0, "upgraded": 0, "downgraded": 0, "in_grace": 0}
        after: UUID | None = None
        while True:
            async with self.database.session() as session:
                counts, after = await evaluate_batch(
                    session, now, after=after, batch=self.batch_size
                )
            for key, n in counts.items():
                total[key] += n
            if after is None:
                return total

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                counts = await self.run_once()
                if counts["upgraded"] or counts["downgraded"]:
                    logger.info("loyalty tiers evaluated: %s", counts)
            except Exception as exc:  # the database may be down for a while: try next time
                logger.warning("loyalty tier pass failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="loyalty-tier-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@asynccontextmanager
async def tier_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    if settings.loyalty_evaluation_interval_s <= 0:
        yield
        return
    scheduler = TierScheduler(app.state.database, interval_s=settings.loyalty_evaluation_interval_s)
    app.state.tier_scheduler = scheduler
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
