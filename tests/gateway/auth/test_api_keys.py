"""API keys against the real database: the admin endpoints (create — secret shown once —,
list, read, revoke) and authenticating with a key (revoked, expired, wrong, cached).

The app is a small one built with ``shared.app.create_app`` around the admin router, with an
Authenticator on ``app.state.gateway`` (as the gateway's lifespan puts it there): callers are
authenticated by the real dependency, with dev tokens or API keys."""

from __future__ import annotations

import hashlib
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text

from gateway.auth import API_KEY_PATTERN, Authenticator, admin_router, mint_dev_token
from gateway.auth.api_keys import checksum
from gateway.auth.roles import ROLE_SCOPES
from gateway.config import Settings
from shared.app import create_app
from shared.errors import Unauthorized
from tests.gateway.auth.conftest import FakeClock
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEYS = "/api/v1/admin/api-keys"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def settings(make_settings) -> Settings:
    return make_settings(Settings, jwks_url="")


def as_role(settings: Settings, role: str, subject: str = "admin-ada") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_dev_token(settings, role=role, subject=subject)}"}


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings):
    @asynccontextmanager
    async def gateway_state(app):
        authenticator = Authenticator(settings, app.state.database)
        await authenticator.start()
        app.state.gateway = SimpleNamespace(authenticator=authenticator)
        try:
            yield
        finally:
            await authenticator.close()

    return create_app(
        settings,
        title="gateway auth (test)",
        description="The API-key admin router behind the gateway's authentication.",
        routers=[admin_router],
        authenticated=False,
        lifespan_extension=gateway_state,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


@pytest.fixture
def admin(settings) -> dict[str, str]:
    return as_role(settings, "admin")


async def create_key(client, admin, **body) -> dict[str, Any]:
    body = {"name": "Shop sync", "role": "partner", **body}
    response = await client.post(KEYS, json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreateApiKey:
    async def test_creates_a_key_and_shows_its_secret_only_in_this_response(
        self, client, admin, app
    ):
        response = await client.post(
            KEYS,
            json={"name": "Shop sync", "role": "partner", "scopes": ["orders:write"]},
            headers=admin,
        )
        assert response.status_code == 201
        assert response.headers["cache-control"] == "no-store"
        created = response.json()
        key = created["key"]
        assert API_KEY_PATTERN.match(key)
        assert key.startswith(created["prefix"])
        assert created["prefix"] == f"rpk_{created['key_id']}_"
        assert response.headers["location"] == f"{KEYS}/{created['id']}"
        assert created["scopes"] == ["orders:write"]
        assert created["created_by"] == "admin-ada"
        assert created["status"] == "active"

        listed = (await client.get(KEYS, headers=admin)).json()["items"]
        fetched = (await client.get(f"{KEYS}/{created['id']}", headers=admin)).json()
        secret = key[len(created["prefix"]) : -6]
        for shown in [*listed, fetched]:
            assert "key" not in shown
            assert "secret_hash" not in shown
            assert secret not in str(shown)
        assert fetched["id"] == created["id"]

        async with app.state.database.session() as session:
            row = (
                await session.execute(
                    text("SELECT * FROM gateway.api_key WHERE id = :id"), {"id": created["id"]}
                )
            ).one()
        assert row.secret_hash == hashlib.sha256(secret.encode()).digest()
        assert secret not in str(tuple(row))
        assert key not in str(tuple(row))

    async def test_a_key_without_scopes_gets_all_of_its_roles_scopes(self, client, admin):
        created = await create_key(client, admin, role="analyst")
        assert set(created["scopes"]) == ROLE_SCOPES["analyst"]

    async def test_refuses_scopes_the_role_does_not_have(self, client, admin):
        response = await client.post(
            KEYS,
            json={"name": "x", "role": "partner", "scopes": ["orders:read", "admin"]},
            headers=admin,
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        [error] = response.json()["errors"]
        assert error["pointer"] == "/body/scopes"
        assert "admin" in error["detail"]

    async def test_refuses_an_unknown_role(self, client, admin):
        response = await client.post(KEYS, json={"name": "x", "role": "root"}, headers=admin)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/body/role"

    async def test_refuses_an_expiry_in_the_past(self, client, admin):
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        response = await client.post(
            KEYS, json={"name": "x", "role": "partner", "expires_at": past}, headers=admin
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/body/expires_at"

    async def test_refuses_a_caller_without_the_admin_scope(self, client, settings):
        response = await client.post(
            KEYS, json={"name": "x", "role": "partner"}, headers=as_role(settings, "sales")
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["missing_scopes"] == ["admin"]

    async def test_refuses_an_anonymous_caller(self, client):
        response = await client.post(KEYS, json={"name": "x", "role": "partner"})
        assert response.status_code == 401
        assert response.json()["type"] == "/problems/unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestListApiKeys:
    async def test_pages_through_every_key_with_a_cursor(self, client, admin):
        ids = [(await create_key(client, admin, name=f"key {i}"))["id"] for i in range(3)]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(KEYS, params=params, headers=admin)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # (In this test's single transaction now() is constant: ties are ordered by id.)
        assert set(ids) <= set(seen)
        assert len(seen) == len(set(seen))


class TestGetApiKey:
    async def test_answers_404_for_an_unknown_key(self, client, admin):
        response = await client.get(f"{KEYS}/{uuid4()}", headers=admin)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"

    async def test_tells_non_admins_nothing_about_whether_a_key_exists(self, client, settings):
        response = await client.get(f"{KEYS}/{uuid4()}", headers=as_role(settings, "support"))
        assert response.status_code == 403


class TestRevokeApiKey:
    async def test_a_revoked_key_is_refused_at_once_by_this_gateway(self, client, admin, app):
        created = await create_key(client, admin, role="admin", name="ops script")
        authenticator: Authenticator = app.state.gateway.authenticator
        by_key = {"X-API-Key": created["key"]}

        assert (await client.get(KEYS, headers=by_key)).status_code == 200  # now cached
        response = await client.delete(f"{KEYS}/{created['id']}", headers=admin)
        assert response.status_code == 204

        response = await client.get(KEYS, headers=by_key)
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        with pytest.raises(Unauthorized, match="revoked"):
            await authenticator.authenticate({"x-api-key": created["key"]})

    async def test_another_gateway_refuses_a_revoked_key_within_its_cache_time(
        self, client, admin, app, settings
    ):
        created = await create_key(client, admin)
        clock = FakeClock()
        replica = Authenticator(settings, app.state.database, api_key_cache_s=30, clock=clock)
        headers = {"x-api-key": created["key"]}
        assert (await replica.authenticate(headers)).kind == "api_key"

        assert (await client.delete(f"{KEYS}/{created['id']}", headers=admin)).status_code == 204
        clock.advance(29)
        await replica.authenticate(headers)  # still within the documented bound
        clock.advance(1)
        with pytest.raises(Unauthorized, match="revoked"):
            await replica.authenticate(headers)
        await replica.close()

    async def test_revoking_twice_is_fine_and_keeps_the_first_revocation(
        self, client, admin, settings
    ):
        created = await create_key(client, admin)
        url = f"{KEYS}/{created['id']}"
        assert (await client.delete(url, headers=admin)).status_code == 204
        first = (await client.get(url, headers=admin)).json()
        other_admin = as_role(settings, "admin", subject="admin-bob")
        assert (await client.delete(url, headers=other_admin)).status_code == 204
        second = (await client.get(url, headers=admin)).json()
        assert second["status"] == "revoked"
        assert second["revoked_at"] == first["revoked_at"]
        assert second["revoked_by"] == "admin-ada"

    async def test_answers_404_for_an_unknown_key(self, client, admin):
        assert (await client.delete(f"{KEYS}/{uuid4()}", headers=admin)).status_code == 404


class TestAuthenticatingWithAnApiKey:
    @pytest.mark.parametrize("style", ["x-api-key", "bearer"])
    async def test_a_key_authenticates_in_either_header(self, client, admin, style):
        key = (await create_key(client, admin, role="admin", name="script"))["key"]
        headers = {"X-API-Key": key} if style == "x-api-key" else {"Authorization": f"Bearer {key}"}
        assert (await client.get(KEYS, headers=headers)).status_code == 200

    async def test_the_principal_acts_as_the_keys_role_narrowed_to_its_scopes(
        self, client, admin, app
    ):
        created = await create_key(
            client, admin, role="partner", scopes=["customers:read", "orders:write"]
        )
        authenticator: Authenticator = app.state.gateway.authenticator
        principal = await authenticator.authenticate({"x-api-key": created["key"]})
        assert principal.kind == "api_key"
        assert principal.subject == f"api_key:{created['key_id']}"
        assert principal.roles == ("partner",)
        assert principal.name == "Shop sync"
        assert principal.scopes == {"customers:read", "orders:write"}
        assert principal.scope_mode == "all"

    async def test_a_partner_key_cannot_reach_the_admin_endpoints(self, client, admin):
        key = (await create_key(client, admin, role="partner"))["key"]
        response = await client.get(KEYS, headers={"X-API-Key": key})
        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["admin"]

    async def test_an_expired_key_is_refused(self, client, admin, app):
        created = await create_key(client, admin)
        async with app.state.database.session() as session:
            await session.execute(
                text(
                    "UPDATE gateway.api_key SET expires_at = now() - interval '1 minute' "
                    "WHERE id = :id"
                ),
                {"id": created["id"]},
            )
        response = await client.get(KEYS, headers={"X-API-Key": created["key"]})
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]
        listed = (await client.get(f"{KEYS}/{created['id']}", headers=admin)).json()
        assert listed["status"] == "expired"

    async def test_a_cached_key_is_refused_once_it_expires(self, client, admin, app, settings):
        expires = datetime.now(UTC) + timedelta(hours=1)
        created = await create_key(client, admin, expires_at=expires.isoformat())
        clock = FakeClock()
        authenticator = Authenticator(
            settings, app.state.database, api_key_cache_s=86_400, clock=clock
        )
        headers = {"x-api-key": created["key"]}
        await authenticator.authenticate(headers)
        clock.advance(3601)
        with pytest.raises(Unauthorized, match="expired"):
            await authenticator.authenticate(headers)
        await authenticator.close()

    async def test_a_key_with_a_valid_checksum_but_a_wrong_secret_is_refused(self, client, admin):
        created = await create_key(client, admin)
        body = f"{created['prefix']}{'Z' * 32}"
        response = await client.get(KEYS, headers={"X-API-Key": body + checksum(body)})
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid API key"

    async def test_an_unknown_key_id_is_refused(self, client):
        body = f"rpk_{'Q' * 12}_{'Z' * 32}"
        response = await client.get(KEYS, headers={"X-API-Key": body + checksum(body)})
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid API key"

    async def test_last_used_at_is_written_at_most_once_a_minute(
        self, client, admin, app, settings
    ):
        created = await create_key(client, admin)
        clock = FakeClock(start=float(int(time.time())))
        uncached = Authenticator(settings, app.state.database, api_key_cache_s=0, clock=clock)
        headers = {"x-api-key": created["key"]}

        async def last_used() -> datetime | None:
            async with app.state.database.session() as session:
                return await session.scalar(
                    text("SELECT last_used_at FROM gateway.api_key WHERE id = :id"),
                    {"id": created["id"]},
                )

        assert await last_used() is None
        await uncached.authenticate(headers)
        first = await last_used()
        assert first == datetime.fromtimestamp(clock.now, UTC)
        for _ in range(5):
            clock.advance(10)
            await uncached.authenticate(headers)
        assert await last_used() == first  # 50 s later: not rewritten
        clock.advance(11)
        await uncached.authenticate(headers)
        assert await last_used() == datetime.fromtimestamp(clock.now, UTC)
        await uncached.close()


class TestPrincipalFromTheEdge:
    async def test_the_dependency_uses_the_principal_the_edge_already_authenticated(self, settings):
        """When the gateway's edge middleware has put a principal on the request, the
        dependency takes it as is (here there is no authenticator at all)."""
        from starlette.middleware import Middleware

        from shared.auth import Principal

        class Edge:
            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                if scope["type"] == "http":
                    scope.setdefault("state", {})["principal"] = Principal(
                        subject="edge-admin", scopes=frozenset({"admin"})
                    )
                await self.app(scope, receive, send)

        app = create_app(
            settings,
            title="t",
            description="t",
            routers=[admin_router],
            authenticated=False,
            middleware=[Middleware(Edge)],
        )
        async with api_client(app) as client:
            created = await client.post(KEYS, json={"name": "edge", "role": "analyst"})
        assert created.status_code == 201
        assert created.json()["created_by"] == "edge-admin"
