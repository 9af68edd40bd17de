"""The SLA scheduler: marks tickets past due and publishes ``TicketSlaBreached`` once each.

Every replica runs one. A pass claims due tickets with ``FOR UPDATE SKIP LOCKED`` inside a
conditional ``UPDATE … RETURNING`` and queues the events in the same transaction, so two
replicas never publish the same breach: the loser either skips the locked rows or, once the
winner commits, no longer matches the ``breached_at IS NULL`` condition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.interactions.scheduling import Clock, PeriodicJob, running_job, utcnow
from services.interactions.ticket.repository import TicketRepository
from shared.db import Database
from shared.events import TicketSlaBreached
from shared.messaging import publish

__all__ = ["SlaScheduler", "sla_scheduler_lifespan"]

TARGETS = ("first_response", "resolution")


class SlaScheduler(PeriodicJob):
    name = "sla-scheduler"

    def __init__(
        self,
        database: Database,
        *,
        now: Clock = utcnow,
        interval_s: float = 30.0,
        batch_size: int = 500,
    ) -> None:
        super().__init__(database, now=now, interval_s=interval_s)
        self.batch_size = batch_size

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


@asynccontextmanager
async def sla_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    scheduler = None
    if settings.sla_scheduler_enabled:
        scheduler = SlaScheduler(app.state.database, interval_s=settings.sla_scheduler_interval_s)
        app.state.sla_scheduler = scheduler
    async with running_job(scheduler):
        yield
