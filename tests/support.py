"""Helpers for tests: internal tokens, running an app in-process, and the whole stack as
real processes (:func:`process_stack`, as ``make run`` starts it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, Protocol

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from shared.auth import Principal, mint_internal_token
from shared.db import Database
from shared.devstack.process import free_port
from shared.migrate import upgrade
from shared.parts import PARTS, part
from shared.settings import DEV_INTERNAL_SECRET
from shared.stack import PartProcess, wiring_env


class StackInfra(Protocol):
    """What a process stack needs of its infrastructure (the session's, or a test's own)."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def supports_idempotence(self) -> bool: ...

    def create_database(self, name: str) -> str: ...

    def drop_database(self, name: str) -> None: ...


def bearer(
    *scopes: str,
    subject: str = "user-1",
    secret: str | None = None,
    scope_mode: Literal["own", "team", "all"] = "all",
    team: str | None = None,
) -> dict[str, str]:
    """Headers carrying an internal token, as the gateway would forward them."""
    principal = Principal(
        subject=subject, scopes=frozenset(scopes), scope_mode=scope_mode, team=team
    )
    # Long-lived: tokens are minted when test modules load, long before some tests run.
    token = mint_internal_token(principal, secret or DEV_INTERNAL_SECRET, ttl_s=6 * 3600)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run ``app``'s lifespan (startup/shutdown) around a block."""
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def api_client(app: FastAPI, *, rollback: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``app``; with ``rollback`` every write of the test is undone."""
    async with running(app):
        database = app.state.database
        async with database.engine.connect() as conn:
            transaction = await conn.begin()
            if rollback:
                database.bind(conn)
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                    yield c
            finally:
                database.bind(None)
                await transaction.rollback()


async def until_a_backend_waits_for_a_lock(database: Database, timeout_s: float = 10.0) -> None:
    """Return once some transaction in ``database``'s database waits for a lock (a test's
    concurrent call has reached the point where it must wait for the test's own)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    )
    async with asyncio.timeout(timeout_s):
        while True:
            async with database.engine.connect() as conn:
                if await conn.scalar(query):
                    return
            await asyncio.sleep(0.02)


@dataclasses.dataclass
class ProcessStack:
    """The gateway and the four services running as processes (``rapport serve``)."""

    processes: dict[str, PartProcess]
    #: The gateway's base URL (``http://127.0.0.1:<port>``); the public API is under
    #: :attr:`gateway`, partner webhooks under ``{root}/webhooks/{source}``.
    root: str
    database: str  # asyncpg DSN of the stack's own database

    @property
    def gateway(self) -> str:
        return f"{self.root}/api/v1"

    def pid(self, name: str) -> int:
        pid = self.processes[name].pid
        assert pid is not None, f"{name} is not running"
        return pid


@asynccontextmanager
async def process_stack(
    infra: StackInfra, work_dir: Path, *, prefix: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[ProcessStack]:
    """Every part as a real process on a fresh database (``<prefix>_<hex>``, migrated with
    every chain) and the session's broker, wired to each other by :func:`wiring_env` on
    free ports. ``env`` adds to or overrides the processes' environment. Processes left
    frozen (SIGSTOP) by a test are resumed before they are stopped."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    # In a thread: with TEST_DATABASE_URL it runs an event loop of its own.
    url = await asyncio.to_thread(infra.create_database, name)
    for p in PARTS:
        await asyncio.to_thread(upgrade, p.name, "head", url)
    ports = {p.name: free_port() for p in PARTS}
    child_env = {
        **os.environ,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": str(infra.supports_idempotence).lower(),
        "RAPPORT_ENVIRONMENT": "development",
        "RAPPORT_LOG_LEVEL": "WARNING",
        "GATEWAY_RATE_LIMIT_ENABLED": "false",
        "GATEWAY_OUTBOUND_ENABLED": "false",
        **wiring_env(ports),
        **(env or {}),
    }
    processes = {
        p.name: PartProcess(
            dataclasses.replace(part(p.name), port=ports[p.name]), work_dir, child_env
        )
        for p in PARTS
    }
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes.values()))
        yield ProcessStack(
            processes,
            f"http://127.0.0.1:{ports['gateway']}",
            url.replace("postgresql+asyncpg://", "postgresql://"),
        )
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(process.pid, signal.SIGCONT)  # type: ignore[arg-type]
        await asyncio.gather(
            *(asyncio.to_thread(p.stop) for p in processes.values()), return_exceptions=True
        )
        await asyncio.to_thread(infra.drop_database, name)
