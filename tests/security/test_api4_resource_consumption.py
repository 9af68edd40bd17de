"""OWASP API4:2023 — Unrestricted Resource Consumption.

Every way a caller could make Rapport do unbounded work is capped, through the gateway:

* **page sizes** — every list operation in the merged spec declares a maximum ``limit``
  (≤ 200) and a larger one is a ``422``;
* **request bodies** — over ``max_body_bytes`` is a ``413`` problem, declared length or
  chunked, at the gateway and at the service behind it; webhooks have their own cap;
* **imports** — file uploads have their own (larger) cap, ``413`` beyond it;
* **batches and queries** — batch sizes, search terms and text fields are bounded;
* **rate limits** — per principal and role, ``429`` with ``RateLimit-Policy``, ``RateLimit``
  and ``Retry-After`` once the quota is used.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.gateway.edge.conftest import Gateway, running_gateway
from tests.security.conftest import MAX_BODY, PROBLEM, RATE_LIMITS, Stack, security_gateway_settings
from tests.support import bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAGE_MAX = 200
QUOTA = 5
#: Required query parameters of list operations, besides ``limit``.
REQUIRED = {"/api/v1/customers:search": {"q": "anyone"}}


async def spec(stack: Stack) -> dict[str, Any]:
    response = await stack.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert set(document["info"]["x-rapport-services"].values()) == {"ok"}
    return document


def limit_params(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "limit" and parameter["in"] == "query":
                found.append((path, parameter["schema"]))
    return found


class TestPageSizes:
    async def test_every_list_operation_declares_a_bounded_page_size(self, stack: Stack):
        params = limit_params(await spec(stack))
        assert len(params) >= 20  # the check is not vacuous
        unbounded = {p: s for p, s in params if not 1 <= s.get("maximum", 10**9) <= PAGE_MAX}
        assert unbounded == {}
        assert all(s.get("minimum") == 1 for _, s in params)

    async def test_a_larger_page_is_refused_on_every_list_without_path_parameters(
        self, stack: Stack
    ):
        headers = stack.auth("admin")
        checked = 0
        for path, schema in limit_params(await spec(stack)):
            if "{" in path:
                continue
            extra = REQUIRED.get(path, {})
            too_big = await stack.client.get(
                path, params={**extra, "limit": schema["maximum"] + 1}, headers=headers
            )
            assert too_big.status_code == 422, (path, too_big.text)
            assert too_big.headers["content-type"] == PROBLEM
            largest = await stack.client.get(
                path, params={**extra, "limit": schema["maximum"]}, headers=headers
            )
            assert largest.status_code == 200, (path, largest.text)
            checked += 1
        assert checked >= 10


async def chunks(size: int, piece: int = 8192) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * min(piece, size - sent)
        sent += piece


class TestBodies:
    async def test_a_body_over_the_cap_is_a_413_problem(self, stack: Stack):
        body = b'{"display_name": "' + b"x" * MAX_BODY + b'"}'
        response = await stack.client.post(
            "/api/v1/customers",
            content=body,
            headers={**stack.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/payload-too-large"

    async def test_a_chunked_body_over_the_cap_is_a_413_problem(self, stack: Stack):
        response = await stack.client.post(
            "/api/v1/interactions",
            content=chunks(MAX_BODY * 4),
            headers={**stack.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == PROBLEM

    async def test_a_body_just_under_the_cap_is_not_refused_for_its_size(self, stack: Stack):
        padding = MAX_BODY - 200
        body = b'{"display_name": "ok", "tags": [], "x": "' + b"y" * padding + b'"}'
        response = await stack.client.post(
            "/api/v1/customers",
            content=body,
            headers={**stack.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422  # refused for the unknown field, not its size
        assert "payload" not in response.json()["type"]

    async def test_the_service_behind_the_gateway_caps_bodies_too(self, stack: Stack):
        cap = stack.apps["customer360"].state.settings.max_body_bytes
        body = b'{"display_name": "' + b"x" * cap + b'"}'
        async with httpx.AsyncClient(base_url=stack.urls["customer360"]) as client:
            response = await client.post(
                "/customers",
                content=body,
                headers={**bearer("customers:write"), "Content-Type": "application/json"},
            )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == PROBLEM

    async def test_a_webhook_over_its_cap_is_refused_before_it_is_stored(self, stack: Stack):
        name = f"big{uuid.uuid4().hex[:8]}"
        created = await stack.client.post(
            "/api/v1/admin/webhook-sources", json={"name": name}, headers=stack.auth()
        )
        assert created.status_code == 201, created.text
        cap = stack.settings.webhook_max_body_bytes
        response = await stack.client.post(
            f"/webhooks/{name}",
            content=b"{" + b" " * cap + b"}",
            headers={
                "Content-Type": "application/json",
                "webhook-id": "msg_big",
                "webhook-timestamp": "0",
                "webhook-signature": "v1,AAAA",
            },
        )
        assert response.status_code == 413, response.text
        receipts = await stack.client.get(
            "/api/v1/admin/webhook-receipts", params={"source": name}, headers=stack.auth()
        )
        assert receipts.status_code == 200, receipts.text
        assert receipts.json()["items"] == []


class TestImports:
    async def test_an_upload_over_the_import_cap_is_a_413(
        self, stack: Stack, make_settings: Callable[..., Any]
    ):
        cap = 100_000
        settings = security_gateway_settings(make_settings, stack.urls, max_upload_bytes=cap)
        async with running_gateway(settings) as gateway:
            headers = {**gateway.auth("admin"), "Content-Type": "text/csv"}
            row = "Import Cap,cap@example.invalid\n"
            small = "display_name,email\n" + row
            big = "display_name,email\n" + row * (cap // len(row) + 10)
            assert len(big) > cap > MAX_BODY
            refused = await gateway.client.post(
                "/api/v1/imports/customers", content=big.encode(), headers=headers
            )
            assert refused.status_code == 413, refused.text
            assert refused.headers["content-type"] == PROBLEM
            accepted = await gateway.client.post(
                "/api/v1/imports/customers", content=small.encode(), headers=headers
            )
            assert accepted.status_code == 202, accepted.text

    async def test_imports_may_exceed_the_ordinary_body_cap_up_to_theirs(self, stack: Stack):
        row = "Import Size,size@example.invalid\n"
        body = "display_name,email\n" + row * (MAX_BODY // len(row) + 10)
        assert len(body) > MAX_BODY
        response = await stack.client.post(
            "/api/v1/imports/customers",
            content=body.encode(),
            headers={**stack.auth("admin"), "Content-Type": "text/csv"},
        )
        assert response.status_code == 202, response.text


class TestBoundedWork:
    async def test_batch_sizes_search_terms_and_text_fields_are_bounded(self, stack: Stack):
        document = await spec(stack)
        batch = document["paths"]["/api/v1/interactions:batch"]["post"]["requestBody"]
        ref = batch["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert document["components"]["schemas"][ref]["properties"]["events"]["maxItems"] == 1000
        headers = stack.auth("admin")
        search = await stack.client.get(
            "/api/v1/customers:search", params={"q": "x" * 101}, headers=headers
        )
        assert search.status_code == 422, search.text
        name = await stack.client.post(
            "/api/v1/customers", json={"display_name": "x" * 5000}, headers=headers
        )
        assert name.status_code == 422, name.text
        tags = await stack.client.post(
            "/api/v1/customers",
            json={"display_name": "many tags", "tags": [f"t{i}" for i in range(5000)]},
            headers=headers,
        )
        assert tags.status_code in (413, 422), tags.text


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited(stack: Stack, make_settings: Callable[..., Any]) -> AsyncIterator[Gateway]:
    """A gateway in front of the same services where analysts get 5 requests a minute."""
    limits = {**RATE_LIMITS, "analyst": QUOTA}
    settings = security_gateway_settings(make_settings, stack.urls, rate_limits=limits)
    async with running_gateway(settings) as gateway:
        yield gateway


class TestRateLimits:
    async def test_over_the_quota_is_a_429_with_the_ratelimit_fields(self, limited: Gateway):
        quota = QUOTA
        headers = limited.auth("analyst", f"analyst-{uuid.uuid4().hex[:8]}")
        answers = [
            await limited.client.get("/api/v1/customers", headers=headers) for _ in range(quota + 1)
        ]
        assert [a.status_code for a in answers] == [200] * quota + [429]
        assert [a.headers["ratelimit"].split(";")[1] for a in answers[:quota]] == [
            f"r={quota - n}" for n in range(1, quota + 1)
        ]
        refused = answers[-1]
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "/problems/too-many-requests"
        assert refused.headers["ratelimit-policy"] == f'"analyst";q={quota};w=60'
        assert int(refused.headers["retry-after"]) > 0

    async def test_a_new_token_does_not_reset_the_bucket(self, limited: Gateway):
        subject = f"analyst-{uuid.uuid4().hex[:8]}"
        for _ in range(QUOTA):
            ok = await limited.client.get(
                "/api/v1/customers", headers=limited.auth("analyst", subject)
            )
            assert ok.status_code == 200
        again = await limited.client.get(
            "/api/v1/customers", headers=limited.auth("analyst", subject)
        )
        assert again.status_code == 429
        other = await limited.client.get("/api/v1/customers", headers=limited.auth("analyst"))
        assert other.status_code == 200

    async def test_api_keys_are_rate_limited_too(self, limited: Gateway):
        created = await limited.client.post(
            "/api/v1/admin/api-keys",
            json={"name": f"rl {uuid.uuid4().hex[:6]}", "role": "analyst"},
            headers=limited.auth(),
        )
        assert created.status_code == 201, created.text
        headers = {"X-API-Key": created.json()["key"]}
        answers = [
            (await limited.client.get("/api/v1/customers", headers=headers)).status_code
            for _ in range(QUOTA + 1)
        ]
        assert answers == [200] * QUOTA + [429]
