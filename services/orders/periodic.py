"""The periodic passes run inside the orders service, one task per pass, each on its own
interval (``0`` turns a pass off):

* ``loyalty-tiers`` (every ``ORDERS_LOYALTY_EVALUATION_INTERVAL_S``, default hourly):
  upgrades happen as points are earned, but downgrades need time to pass (the grace
  period), so something must look again — :func:`services.orders.loyalty.service.run_tier_pass`.
* ``partner-expiry`` (every ``ORDERS_PARTNER_EXPIRY_INTERVAL_S``, default hourly): partner
  actions parked for longer than ``ORDERS_PARTNER_PARKED_TTL_S`` (their order never came) are
  given up and reported failed — :func:`services.orders.partner.service.run_expiry_pass`.

Every replica runs them; each pass works one batch per transaction and skips rows another
replica (or a request in flight) holds, so running side by side changes nothing twice. A pass
that fails (the database is down for a while) logs a warning and is tried at the next tick
(the loop of :mod:`shared.periodic`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from services.orders.config import Settings
from services.orders.loyalty.service import run_tier_pass
from services.orders.partner.service import run_expiry_pass
from shared.db import Database
from shared.periodic import Periodic

__all__ = ["Pass", "PeriodicPasses", "orders_passes", "periodic_lifespan"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Pass:
    name: str
    #: Seconds between two runs; ``<= 0``: never run periodically.
    interval_s: float
    #: One whole pass at the given time; returns the counts of what it did.
    run: Callable[[Database, datetime], Awaitable[dict[str, int]]]
    #: The counts that make a pass worth an info log line (the others are routine).
    notable: tuple[str, ...]


def orders_passes(settings: Settings, *, batch: int = 500) -> list[Pass]:
    ttl = timedelta(seconds=settings.partner_parked_ttl_s)
    return [
        Pass(
            "loyalty-tiers",
            settings.loyalty_evaluation_interval_s,
            lambda database, now: run_tier_pass(database, now, batch=batch),
            ("upgraded", "downgraded"),
        ),
        Pass(
            "partner-expiry",
            settings.partner_expiry_interval_s,
            lambda database, now: run_expiry_pass(database, now, ttl, batch=batch),
            ("expired",),
        ),
    ]


class _Running(Periodic):
    """One pass on the shared loop (:mod:`shared.periodic`)."""

    def __init__(self, job: Pass, database: Database, now: Callable[[], datetime]) -> None:
        self.job, self.database, self.now = job, database, now
        self.name, self.interval_s = job.name, job.interval_s

    async def run_once(self) -> dict[str, int]:
        return await self.job.run(self.database, self.now())

    def report(self, result: dict[str, int]) -> str | None:
        return f"{result}" if any(result.get(key) for key in self.job.notable) else None


class PeriodicPasses:
    def __init__(
        self,
        database: Database,
        passes: Sequence[Pass],
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.passes = {p.name: _Running(p, database, now) for p in passes}

    async def run_once(self, name: str) -> dict[str, int]:
        """Run the pass ``name`` once, at ``now()``; the counts of what it did."""
        return await self.passes[name].run_once()

    def start(self) -> None:
        for job in self.passes.values():
            if job.interval_s > 0:
                job.start()

    async def stop(self) -> None:
        for job in self.passes.values():
            await job.stop()


@asynccontextmanager
async def periodic_lifespan(app: FastAPI) -> AsyncIterator[None]:
    passes = PeriodicPasses(app.state.database, orders_passes(app.state.settings))
    app.state.periodic_passes = passes
    passes.start()
    try:
        yield
    finally:
        await passes.stop()
