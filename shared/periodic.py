"""A pass run periodically inside a part: the one loop every background job shares.

A job implements :meth:`Periodic.run_once` (one whole pass) and, if a pass's result is worth
an info line, :meth:`Periodic.report`. The loop sleeps first (a replica that just started lets
the running ones go on), then runs a pass; a pass that fails — the database is down for a
while — logs a warning and is tried again at the next tick. Every replica runs every job, so
``run_once`` must be safe to run concurrently (``FOR UPDATE SKIP LOCKED`` claims, idempotent
writes). Tests call ``run_once`` themselves instead of waiting for the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["Periodic", "running"]

logger = logging.getLogger(__name__)


class Periodic(ABC):
    #: The asyncio task's name and the log's word for the job.
    name: str = "periodic"
    #: Seconds between two passes.
    interval_s: float = 60.0

    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> Any:
        """One whole pass; what it did, for :meth:`report`."""

    def report(self, result: Any) -> str | None:
        """The info line a pass's ``result`` is worth (``None``: a routine pass, no line)."""
        return None

    async def _wait(self) -> None:
        """Until the next pass is due."""
        await asyncio.sleep(self.interval_s)

    async def _loop(self) -> None:
        while True:
            await self._wait()
            try:
                if line := self.report(await self.run_once()):
                    logger.info("%s: %s", self.name, line)
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
async def running(*jobs: Periodic | None) -> AsyncIterator[None]:
    """Run the loops of ``jobs`` for the block (``None``: a job switched off)."""
    started: Iterable[Periodic] = [job for job in jobs if job is not None]
    for job in started:
        job.start()
    try:
        yield
    finally:
        for job in started:
            await job.stop()
