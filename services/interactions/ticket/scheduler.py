"""The SLA scheduler: marks tickets past due and publishes ``TicketSlaBreached`` once each.

Every replica runs one. A pass claims due tickets with ``FOR UPDATE SKIP LOCKED`` inside a
conditional ``UPDATE … RETURNING`` and queues the events in the same transaction, so two
replicas never publish the same breach: the loser either skips the locked rows or, once the
winner commits, no longer matches the ``breached_at IS NULL`` condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from services.interactions.ticket.repository import TicketRepository
from shared.db import Database
from shared.events import TicketSlaBreached
from shared.messaging import publish

__all__ = ["SlaScheduler", "sla_scheduler_lifespan"]

logger = logging.getLogger(__name__)

TARGETS = ("first_response", "resolution")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SlaScheduler:
    def __init__(
        self,
        database: Database,
        *,
        now: Callable[[], datetime] = _utcnow,
        interval_s: float = 30.0,
        batch_size: int = 500,
    ) -> None:
        self.database = database
        self.now = now
        self.interval_s = interval_s
        self.batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One pass at ``now()``: returns how many breaches it recorded (and published)."""
        total = 0
        now = self.now()
        for target in TARGETS:
            while True:
                async with self.database.session() as session:
                    breaches = await TicketRepository(session).mark_breaches(
                        target, now, self.batch_size
                    )
                    await publish(
                        session,
                        *(
                            TicketSlaBreached(
                                customer_id=b.customer_id,
                                ticket_id=b.ticket_id,
                                target=target,
                                due_at=b.due_at,
                                breached_at=now,
                                priority=b.priority,
                                assignee=b.assignee_id,
                            )
                            for b in breaches
                        ),
                    )
                total += len(breaches)
                if len(breaches) < self.batch_size:
                    break
        return total

    async def _loop(self) -> None:
        while True:
            # Sleep first: a replica that just started lets the running ones go on.
            await asyncio.sleep(self.interval_s)
            try:
                if found := await self.run_once():
                    logger.info("recorded %d SLA breaches", found)
            except Exception as exc:  # the database may be down for a while: try next time
                logger.warning("SLA scheduler pass failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sla-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@asynccontextmanager
async def sla_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    if not settings.sla_scheduler_enabled:
        yield
        return
    scheduler = SlaScheduler(app.state.database, interval_s=settings.sla_scheduler_interval_s)
    app.state.sla_scheduler = scheduler
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
