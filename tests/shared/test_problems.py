"""Every part answers bad requests with problem+json, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.parts import PARTS, load
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"
ALL_SCOPES = bearer("*")


@pytest.mark.parametrize("part", PARTS, ids=[p.name for p in PARTS])
async def test_bad_requests_to_every_endpoint_get_problem_details(part, make_settings):
    app = load(part.app)(make_settings(load(part.settings)))
    async with api_client(app) as client:
        spec = (await client.get("/openapi.json")).json()
        checked = 0
        for path, operations in spec["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "not-a-valid-id", path)
            for method, operation in operations.items():
                has_params = "{" in path
                has_body = "requestBody" in operation
                if not (has_params or has_body):
                    continue
                attempts: list[dict[str, Any]] = []
                if has_body:
                    attempts += [
                        {"content": b"{not json", "headers": {"content-type": "application/json"}},
                        {"json": [1, "wrong", None]},
                        {"json": {"unexpected": {"deeply": ["nested"]}}},
                    ]
                else:
                    attempts.append({})
                for attempt in attempts:
                    headers = {**ALL_SCOPES, **attempt.pop("headers", {})}
                    response = await client.request(
                        method.upper(), concrete, headers=headers, **attempt
                    )
                    checked += 1
                    assert 400 <= response.status_code < 500, (method, path, response.text)
                    assert response.headers["content-type"] == PROBLEM, (method, path)
                    assert response.json()["status"] == response.status_code
        unknown = await client.get("/no/such/route", headers=ALL_SCOPES)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == PROBLEM
        wrong_method = await client.delete("/health")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["content-type"] == PROBLEM
        assert checked > 0 or part.name == "gateway"


@pytest.mark.parametrize("part", PARTS, ids=[p.name for p in PARTS])
async def test_health_ready_and_metrics_answer(part, make_settings):
    app = load(part.app)(make_settings(load(part.settings)))
    async with api_client(app) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        metrics = await client.get("/metrics")
        assert "rapport_http_request_duration_seconds" in metrics.text


async def test_ready_reports_an_unreachable_database_with_503(make_settings):
    from services.customer360.config import Settings
    from services.customer360.main import create_app

    settings = make_settings(
        Settings, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )
    import httpx

    from tests.support import running

    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == PROBLEM
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert ready.json()["checks"]["broker"] == "ok"
