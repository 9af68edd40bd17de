"""Helpers for tests: internal tokens and running an app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
from fastapi import FastAPI

from shared.auth import Principal, mint_internal_token
from shared.settings import DEV_INTERNAL_SECRET


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
