"""What a running gateway holds (``app.state.gateway``), opened and closed by its lifespan.

Why one object: the edge middleware is built by Starlette before the lifespan runs, so it
cannot be handed these resources at construction. It gets a :class:`StateSlot` instead,
which the lifespan fills — one attribute read per request, no ``app.state`` look-ups — and
empties at shutdown (the edge then answers 503 rather than use a closed client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from gateway.auth.authenticator import Authenticator
from gateway.config import Settings
from gateway.edge import Credentials
from gateway.openapi import OpenAPIMerger
from gateway.outbound.runtime import Outbound
from gateway.proxy import Proxy
from gateway.ratelimit import RateLimiter
from gateway.routes import ROUTES, RouteTable
from gateway.webhooks.batcher import ReceiptBatcher
from gateway.webhooks.service import SourceCache
from shared.db import Database

__all__ = ["GatewayState", "StateSlot", "gateway_lifespan"]


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    routes: RouteTable
    proxy: Proxy
    #: ``None`` when ``rate_limit_enabled`` is off.
    limiter: RateLimiter | None
    authenticator: Authenticator
    credentials: Credentials
    openapi: OpenAPIMerger
    database: Database
    #: The webhook front door's sources and secrets, and its group-commit writer.
    sources: SourceCache
    receipts: ReceiptBatcher
    #: Outbound webhooks: secrets, address policy, and (when enabled) fan-out and sender.
    outbound: Outbound

    @classmethod
    async def open(cls, app: FastAPI, settings: Settings, database: Database) -> GatewayState:
        routes = RouteTable(ROUTES)
        upstreams = {name: settings.upstream_url(name) for name in routes.upstreams}
        proxy = Proxy(
            upstreams,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_timeout_s,
            pool_size=settings.upstream_pool_size,
            max_body_bytes=settings.max_body_bytes,
        )
        await proxy.start()
        authenticator = Authenticator(settings, database)
        try:
            await authenticator.start()
        except BaseException:
            await proxy.close()
            raise
        limiter = RateLimiter(settings.rate_limits)
        credentials = Credentials(
            authenticator,
            limiter,
            internal_secret=settings.internal_token_secret,
            internal_ttl_s=settings.internal_token_ttl_s,
        )
        openapi = OpenAPIMerger(
            routes=routes,
            upstreams=upstreams,
            session=lambda: proxy.session,
            local=app.openapi,
        )
        openapi.start()
        receipts = ReceiptBatcher(
            database,
            max_batch=settings.webhook_batch_max,
            write_timeout_s=settings.webhook_write_timeout_s,
        )
        receipts.start()
        outbound = Outbound.open(settings, database)
        return cls(
            settings=settings,
            routes=routes,
            proxy=proxy,
            limiter=limiter if settings.rate_limit_enabled else None,
            authenticator=authenticator,
            credentials=credentials,
            openapi=openapi,
            database=database,
            sources=SourceCache(),
            receipts=receipts,
            outbound=outbound,
        )

    async def close(self) -> None:
        try:
            # First, while the database is still open: write the webhooks still queued.
            await self.receipts.close(timeout_s=self.settings.webhook_write_timeout_s)
            await self.outbound.close()
            await self.openapi.close()
            await self.authenticator.close()
        finally:
            await self.proxy.close()


class StateSlot:
    """Where the edge finds the :class:`GatewayState` while the app runs."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: GatewayState | None = None


def gateway_lifespan(slot: StateSlot) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The ``lifespan_extension`` of :func:`shared.app.create_app`: runs after the shared
    resources (database, producer) are up, and closes first."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await GatewayState.open(app, app.state.settings, app.state.database)
        app.state.gateway = slot.state = state
        try:
            yield
        finally:
            slot.state = None
            await state.close()

    return lifespan
