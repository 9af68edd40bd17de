"""OWASP API8:2023 — Security Misconfiguration.

* **CORS**: only configured origins get ``Access-Control-Allow-Origin`` (never ``*``, never
  with credentials); look-alike, ``null`` and other origins get none, preflight or not.
* **Debug off**: no app runs in debug mode, and an unexpected error is a plain ``500``
  problem — no traceback, no exception text — from the gateway and from every service.
* **Security headers**: ``nosniff``, no framing, and ``no-store`` on API answers.
* **Production settings** refuse development secrets: the gateway's HS256 dev secret, a
  missing JWKS URL or outbound encryption key, and the default or a short internal-token
  secret in every service; dev tokens cannot be minted in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import ValidationError

from gateway.auth.dev import DevTokenRefused, mint_dev_token
from gateway.config import Settings as GatewaySettings
from gateway.main import create_app as gateway_app
from shared.settings import DEV_INTERNAL_SECRET
from tests.gateway.edge.conftest import SERVICES
from tests.security.conftest import CORS_ORIGIN, PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TestCors:
    @pytest.mark.parametrize(
        "origin",
        [
            "https://evil.example",
            "null",
            f"{CORS_ORIGIN}.evil.example",  # suffix look-alike
            CORS_ORIGIN.replace("https://", "http://"),  # same host, other scheme
            CORS_ORIGIN + ":8443",  # other port
        ],
    )
    async def test_other_origins_get_no_allow_origin(self, stack: Stack, origin: str):
        preflight = await stack.client.options(
            "/api/v1/customers",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        simple = await stack.client.get(
            "/api/v1/customers", headers={**stack.auth(), "Origin": origin}
        )
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers

    async def test_the_configured_origin_is_echoed_exactly_and_without_credentials(
        self, stack: Stack
    ):
        response = await stack.client.get(
            "/api/v1/customers", headers={**stack.auth(), "Origin": CORS_ORIGIN}
        )
        assert response.headers["access-control-allow-origin"] == CORS_ORIGIN
        assert "access-control-allow-credentials" not in response.headers
        assert "Origin" in response.headers["vary"]

    async def test_services_send_no_cors_headers_of_their_own(self, stack: Stack):
        async with httpx.AsyncClient(base_url=stack.urls["customer360"]) as client:
            response = await client.options(
                "/customers",
                headers={"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET"},
            )
        assert "access-control-allow-origin" not in response.headers


def boom(app: FastAPI) -> httpx.AsyncClient:
    async def explode() -> None:
        raise RuntimeError("db password is hunter2")

    app.add_api_route("/boom", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


class TestDebugOff:
    async def test_no_app_runs_in_debug_mode(self, stack: Stack):
        assert stack.gateway.app.debug is False
        assert {name: app.debug for name, app in stack.apps.items()} == dict.fromkeys(
            stack.apps, False
        )

    async def test_an_unexpected_error_reveals_nothing(self, make_settings: Callable[..., Any]):
        apps = {"gateway": gateway_app(make_settings(GatewaySettings))}
        for name, (factory, settings_cls) in SERVICES.items():
            apps[name] = factory(make_settings(settings_cls))
        for name, app in apps.items():
            async with boom(app) as client:
                response = await client.get("/boom")
            assert response.status_code == 500, name
            assert response.headers["content-type"] == PROBLEM, name
            assert response.json()["type"] == "/problems/internal-error", name
            assert "hunter2" not in response.text, name
            assert "Traceback" not in response.text, name
            assert "RuntimeError" not in response.text, name


class TestSecurityHeaders:
    @pytest.mark.parametrize(
        ("path", "authenticated"),
        [
            ("/api/v1/customers", True),
            ("/api/v1/customers", False),  # a 401 problem
            ("/api/v1/no-such-thing", True),  # a 404 problem
            ("/api/v1/admin/api-keys", True),  # a gateway route
            ("/health", False),
            ("/docs", False),
        ],
    )
    async def test_every_answer_carries_them(self, stack: Stack, path: str, authenticated: bool):
        headers = stack.auth() if authenticated else {}
        response = await stack.client.get(path, headers=headers)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        if path.startswith("/api/v1/"):
            assert response.headers["cache-control"] == "no-store"

    async def test_they_are_not_duplicated_and_no_store_is_for_api_answers(self, stack: Stack):
        response = await stack.client.get("/openapi.json")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
        assert "no-store" not in response.headers.get("cache-control", "")


def production(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "environment": "production",
        "internal_token_secret": "s" * 40,
        "database_url": "postgresql+asyncpg://rapport@db/rapport",
    }
    values.update(overrides)
    return values


class TestProductionSettings:
    def good_gateway(self, **overrides: Any) -> dict[str, Any]:
        values = {
            "dev_jwt_secret": "",
            "jwks_url": "https://idp.example/jwks.json",
            "outbound_secret_key": Fernet.generate_key().decode(),
            **overrides,
        }
        return production(**values)

    async def test_a_well_configured_production_gateway_is_accepted(self):
        settings = GatewaySettings(**self.good_gateway())
        with pytest.raises(DevTokenRefused):
            mint_dev_token(settings, role="admin")

    @pytest.mark.parametrize(
        "overrides",
        [
            {"dev_jwt_secret": "rapport-dev-jwt-secret-do-not-use-in-production"},
            {"jwks_url": ""},
            {"outbound_secret_key": ""},
            {"internal_token_secret": DEV_INTERNAL_SECRET},
            {"internal_token_secret": "short"},
        ],
        ids=["dev-jwt-secret", "no-jwks", "no-outbound-key", "dev-internal", "short-internal"],
    )
    async def test_dev_secrets_are_refused_by_the_gateway(self, overrides: dict[str, Any]):
        with pytest.raises(ValidationError):
            GatewaySettings(**self.good_gateway(**overrides))

    @pytest.mark.parametrize("name", list(SERVICES))
    async def test_dev_secrets_are_refused_by_every_service(self, name: str):
        settings_cls = SERVICES[name][1]
        settings_cls(**production())  # the control
        for secret in (DEV_INTERNAL_SECRET, "x" * 31):
            with pytest.raises(ValidationError):
                settings_cls(**production(internal_token_secret=secret))
