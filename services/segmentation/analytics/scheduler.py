"""Runs the analytics batch pass periodically (see :mod:`.service` for what it does).

Every replica runs one. Each wakes every ``min(interval, 60 s)`` and runs a pass only when
the stored boundaries are at least ``interval`` old, so replicas share the work instead of
repeating it (two that wake together both run; the boundary write is serialised and the
second pass publishes nothing new).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.segmentation.analytics.service import Recompute, RecomputeResult, policy_from
from shared.periodic import Periodic, running

__all__ = ["analytics_scheduler_lifespan"]


class _Scheduled(Periodic):
    name = "analytics-scheduler"

    def __init__(self, recompute: Recompute, tick_s: float) -> None:
        self.recompute = recompute
        self.interval_s = tick_s

    async def run_once(self) -> RecomputeResult:
        return await self.recompute.run_once(force=False, trigger="schedule")

    def report(self, result: RecomputeResult) -> str | None:
        if not result.ran:
            return None
        return (
            f"{result.customers_rescored} customers rescored, "
            f"{result.scores_published} scores published"
        )


@asynccontextmanager
async def analytics_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    try:
        if not settings.analytics_scheduler_enabled:
            yield
            return
        async with _scheduled(app):
            yield
    finally:
        # a pass requested through the API (POST /analytics:recompute) stops with the app
        requested = getattr(app.state, "analytics_pass", None)
        if requested is not None and not requested.done():
            requested.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await requested


@asynccontextmanager
async def _scheduled(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    recompute = Recompute(
        app.state.database,
        policy_from(settings),
        batch_size=settings.analytics_batch_size,
        interval_s=settings.analytics_recompute_interval_s,
    )
    async with running(_Scheduled(recompute, min(settings.analytics_recompute_interval_s, 60.0))):
        yield
