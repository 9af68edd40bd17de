"""The app factory every part uses: lifespan wiring, middleware, problems, health, metrics.

A part supplies its settings, its routers and (optionally) its event subscriptions; the
factory builds, in the lifespan and never at import time, the database, the Kafka producer,
the outbox relay and the consumer runner, and closes them in reverse order at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware import Middleware

from shared import tracing
from shared.auth import get_principal
from shared.db import Database
from shared.errors import install_problem_handlers, problem_response, problem_responses
from shared.events import TOPICS, dead_letter_topic
from shared.housekeeping import Housekeeping
from shared.logging import configure_logging
from shared.messaging import ConsumerRunner, OutboxRelay, Producer, Subscriptions, ensure_topics
from shared.metrics import metrics_response
from shared.middleware import RequestContextMiddleware
from shared.settings import RapportSettings

__all__ = ["Runtime", "create_app"]

logger = logging.getLogger(__name__)


class Runtime:
    """What a running part holds; ``app.state.runtime``."""

    def __init__(self, settings: RapportSettings, subscriptions: Subscriptions | None) -> None:
        self.settings = settings
        self.database = Database(
            settings.database_url,
            schema=settings.schema_name,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            echo=settings.database_echo,
            application_name=settings.service_name,
        )
        self.producer = Producer(settings)
        self.relay = OutboxRelay(
            self.database.engine,
            self.producer,
            schema=settings.schema_name,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval_s,
        )
        self.database.on_outbox_commit(self.relay.wake)
        self.consumer: ConsumerRunner | None = None
        if subscriptions and settings.consumers_enabled:
            self.consumer = ConsumerRunner(
                group=settings.service_name,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                database=self.database,
                subscriptions=subscriptions,
                producer=self.producer,
                max_retries=settings.consumer_max_retries,
                retry_backoff=settings.consumer_retry_backoff_s,
                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                session_timeout_ms=settings.kafka_session_timeout_ms,
                stall_timeout_s=settings.consumer_stall_timeout_s,
            )
        self.housekeeping = Housekeeping(self.database.engine, settings.schema_name)
        self._topics_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.kafka_create_topics:
            self._topics_task = asyncio.create_task(self._ensure_topics())
        if self.settings.outbox_relay_enabled:
            self.relay.start()
        if self.consumer is not None:
            self.consumer.start()
        self.housekeeping.start()

    async def _ensure_topics(self) -> None:
        topics = [*TOPICS, dead_letter_topic(self.settings.service_name)]
        delay = 0.5
        while True:
            try:
                await ensure_topics(self.settings, topics)
                return
            except Exception as exc:
                logger.warning("cannot create topics yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """Close in dependency order. The HTTP server has already drained its requests; the
        consumers finish the event at hand and commit their offsets (their effects may have
        queued events), then the relay sends every committed event, all within
        ``shutdown_drain_timeout_s``; only then close the producer and the database."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_drain_timeout_s
        if self._topics_task is not None:
            self._topics_task.cancel()
        await self.housekeeping.stop()
        if self.consumer is not None:
            await self.consumer.stop(timeout=max(deadline - loop.time(), 0.0))
        await self.relay.stop(flush_timeout=max(deadline - loop.time(), 0.0))
        await self.producer.stop()
        await self.database.dispose()
        await asyncio.to_thread(tracing.flush)
        logger.info("%s stopped", self.settings.service_name)


def create_app(
    settings: RapportSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    subscriptions: Subscriptions | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    authenticated: bool = True,
    middleware: Sequence[Middleware] = (),
    lifespan_extension: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    upload_prefixes: tuple[str, ...] = (),
) -> FastAPI:
    """Build one part's app. Its routers require an internal token unless ``authenticated``
    is false (the gateway authenticates on its own). ``middleware`` runs inside the request
    context (request id, metrics, body limit); ``lifespan_extension`` opens the part's own
    resources after the shared ones and closes them first."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, json_logs=settings.log_json)
        tracing.configure_tracing(settings.service_name)
        runtime = Runtime(settings, subscriptions)
        app.state.runtime = runtime
        app.state.database = runtime.database
        await runtime.start()
        try:
            if lifespan_extension is None:
                yield
            else:
                async with lifespan_extension(app):
                    yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        responses=problem_responses(400, 422, 500),
        telemetry=tracing.fastapi_telemetry(),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    for extra in reversed(middleware):
        app.add_middleware(extra.cls, *extra.args, **extra.kwargs)
    app.add_middleware(
        RequestContextMiddleware,
        service=settings.service_name,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_prefixes=upload_prefixes,
    )

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness: the database and the broker are reachable",
        responses=problem_responses(503),
    )
    async def ready() -> JSONResponse:
        runtime: Runtime = app.state.runtime
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2.0):
                await runtime.database.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["broker"] = "ok" if await runtime.producer.reachable() else "unreachable"
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return problem_response(
            503, "not-ready", "a dependency is unreachable", extensions={"checks": checks}
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,  # documents text/plain (the exposition format)
    )
    async def prometheus_metrics() -> Response:
        return metrics_response()

    dependencies = [Depends(get_principal)] if authenticated else []
    for router in routers:
        app.include_router(router, dependencies=dependencies)
    return app
