"""What the periodic jobs of interactions share: a controllable clock and the run loop.

A job (the SLA breach scan, the care-plan scheduler) implements :meth:`PeriodicJob.run_once`
at ``self.now()``; every replica runs every job, so ``run_once`` must be safe to run
concurrently (claim rows with ``FOR UPDATE SKIP LOCKED``, insert with ``ON CONFLICT DO
NOTHING``). Tests drive ``run_once`` with their own clock instead of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import CTE, Select

from shared.db import Database

__all__ = ["Clock", "PeriodicJob", "claim_batch", "running_job", "utcnow"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class PeriodicJob(ABC):
    #: The asyncio task's name and the log's word for the job.
    name: ClassVar[str]

    def __init__(
        self, database: Database, *, now: Clock = utcnow, interval_s: float = 30.0
    ) -> None:
        self.database = database
        self.now = now
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> int:
        """One pass at ``now()``; returns how much it did (for the log)."""

    async def _loop(self) -> None:
        while True:
            # Sleep first: a replica that just started lets the running ones go on.
            await asyncio.sleep(self.interval_s)
            try:
                if done := await self.run_once():
                    logger.info("%s: %d done", self.name, done)
            except Exception as exc:  # the database may be down for a while: try next time
                logger.warning("%s pass failed: %s", self.name, exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@asynccontextmanager
async def running_job(job: PeriodicJob | None) -> AsyncIterator[None]:
    """Run ``job``'s loop for the block (``None``: switched off)."""
    if job is None:
        yield
        return
    job.start()
    try:
        yield
    finally:
        await job.stop()


def claim_batch(candidates: Select[Any]) -> CTE:
    """``candidates`` (ids, ordered, with a LIMIT) locked with ``SKIP LOCKED`` as a
    ``MATERIALIZED`` CTE, for ``UPDATE … FROM claimed WHERE t.id = claimed.id``.

    Not ``WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL may run that
    subquery again for every row, each run skipping the rows just updated, so the LIMIT does
    not hold — 3,000 due tickets were all marked by a pass asked for 500, and 50,000 due
    tasks queued 50,000 events in one transaction (more advisory locks than the lock table
    holds). A materialised CTE runs once."""
    return candidates.with_for_update(skip_locked=True).cte("claimed").prefix_with("MATERIALIZED")
