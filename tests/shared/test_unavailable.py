"""A database that cannot answer is not the client's fault, nor the event's.

Requests get ``503`` with ``Retry-After`` (never a 500), and consumers wait and retry such an
event instead of dead-lettering it. The errors classified are the ones a killed and restarted
PostgreSQL really raises (observed through SQLAlchemy and asyncpg in the chaos suite)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from gateway.config import Settings as GatewaySettings
from gateway.main import create_app as create_gateway
from services.customer360.config import Settings
from services.customer360.main import create_app
from shared.db import database_unavailable, lost_a_race
from shared.devstack.process import free_port
from shared.errors import install_problem_handlers
from tests.support import bearer, running


def _wrapped(cause: BaseException, *, invalidated: bool = False) -> sqlalchemy.exc.DBAPIError:
    """SQLAlchemy's wrapper around the dialect's error around the driver's, as raised."""

    class DialectError(Exception):
        pass

    orig = DialectError(str(cause))
    orig.__cause__ = cause
    return sqlalchemy.exc.DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        _wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
        _wrapped(asyncpg.AdminShutdownError("terminating connection")),
        _wrapped(asyncpg.TooManyConnectionsError("sorry, too many clients already")),
        _wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed")),
        _wrapped(ValueError("whatever the driver said"), invalidated=True),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "orig", e))[:30],
)
def test_an_unavailable_database_is_recognised(exc: BaseException) -> None:
    assert database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(asyncpg.UniqueViolationError("duplicate key")),
        _wrapped(asyncpg.QueryCanceledError("canceling statement due to statement timeout")),
        _wrapped(asyncpg.CheckViolationError("violates check constraint")),
        ValueError("a bug"),
        KeyError("tag"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "orig", e))[:30],
)
def test_a_statement_or_a_bug_is_not_mistaken_for_unavailability(exc: BaseException) -> None:
    assert not database_unavailable(exc)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_request_while_the_database_is_down_gets_503_with_retry_after(make_settings):
    nowhere = f"postgresql+asyncpg://rapport@127.0.0.1:{free_port()}/rapport"
    app = create_app(make_settings(Settings, database_url=nowhere))
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        headers = bearer("customers:read", "customers:write")
        for response in (
            await client.get("/customers", headers=headers),
            await client.post("/customers", json={"display_name": "Ada"}, headers=headers),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/service-unavailable")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_partner_webhook_while_the_database_is_down_gets_503(make_settings):
    nowhere = f"postgresql+asyncpg://rapport@127.0.0.1:{free_port()}/rapport"
    for fast_path in (True, False):
        app = create_gateway(
            make_settings(GatewaySettings, database_url=nowhere, webhook_fast_path=fast_path)
        )
        async with (
            running(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client,
        ):
            response = await client.post(
                "/webhooks/shop",
                content=b"{}",
                headers={
                    "webhook-id": "msg_1",
                    "webhook-timestamp": "1",
                    "webhook-signature": "v1,x",
                },
            )
        assert response.status_code == 503, (fast_path, response.text)
        assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("exc", "race"),
    [
        (_wrapped(asyncpg.DeadlockDetectedError("deadlock detected")), True),
        (_wrapped(asyncpg.SerializationError("could not serialize access")), True),
        (asyncpg.DeadlockDetectedError("deadlock detected"), True),
        (_wrapped(asyncpg.UniqueViolationError("duplicate key")), False),
        (ConnectionRefusedError(111, "refused"), False),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, bool) else str(v),
)
def test_a_deadlock_is_a_race_lost_not_a_bad_event(exc: BaseException, race: bool) -> None:
    assert lost_a_race(exc) is race


@pytest.mark.asyncio(loop_scope="session")
async def test_a_request_that_loses_a_race_gets_503_with_retry_after_not_500() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/things")
    async def collide() -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/things")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/service-unavailable")
    assert "nothing was changed" in response.json()["detail"]
