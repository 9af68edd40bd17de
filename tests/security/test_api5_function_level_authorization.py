"""OWASP API5:2023 — Broken Function Level Authorization.

What a caller may *do* depends on its scopes (from its roles, narrowed by a token's ``scope``
claim or an API key's scopes), checked by the gateway for its own routes and by each service
for its operations. Through the gateway:

* every public operation in the merged spec refuses a principal without scopes (``403``) —
  so no operation is left without a scope check;
* a read-only role (analyst) can change nothing;
* administrative functions (API keys, webhook sources and receipts, SLA policies, care-plan
  rules, pipeline stages, custom fields, analytics recompute) refuse every other role;
* webhook endpoints belong to their owner: another partner sees and changes none of them;
* a narrowed token or API key cannot use what it was narrowed away from.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import jwt
import pytest

from gateway.auth.roles import ROLES
from tests.security.conftest import PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

METHODS = ("get", "post", "put", "patch", "delete")


def concrete(path: str) -> str:
    """A request path for a templated spec path (random ids: the scope check comes first)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "priority":
            return "normal"
        if name in ("key", "source", "name"):
            return "some-key"
        return str(uuid.uuid4())

    return re.sub(r"\{([^}]+)\}", value, path)


#: Operations public by design (no credentials; the spec declares no security): signed
#: campaign tracking links, which mail clients follow.
UNSECURED = {
    ("GET", "/api/v1/campaign-links/{token}"),
    ("POST", "/api/v1/campaign-links/{token}"),
}


async def operations(stack: Stack) -> list[tuple[str, str]]:
    """Every secured public operation (and a check that the unsecured are exactly the
    ones meant to be)."""
    document = (await stack.client.get("/openapi.json")).json()
    assert set(document["info"]["x-rapport-services"].values()) == {"ok"}
    ops = [
        (method.upper(), path, "security" in item[method])
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method in METHODS
        if method in item
    ]
    assert {(m, p) for m, p, secured in ops if not secured} == UNSECURED
    return [(m, p) for m, p, secured in ops if secured]


def token(stack: Stack, roles: list[str], **extra: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": stack.settings.jwt_issuer,
        "aud": stack.settings.jwt_audience,
        "sub": f"fn-{uuid.uuid4().hex[:8]}",
        "iat": now,
        "exp": now + 600,
        "roles": roles,
        **extra,
    }
    encoded = jwt.encode(
        claims, stack.settings.dev_jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"}
    )
    return {"Authorization": f"Bearer {encoded}"}


async def call(stack: Stack, method: str, path: str, headers: dict[str, str]) -> Any:
    body: dict[str, Any] | None = None if method in ("GET", "DELETE") else {}
    return await stack.client.request(method, concrete(path), json=body, headers=headers)


ADMIN_ONLY = [
    ("GET", "/api/v1/admin/api-keys"),
    ("POST", "/api/v1/admin/api-keys"),
    ("DELETE", "/api/v1/admin/api-keys/{api_key_id}"),
    ("GET", "/api/v1/admin/webhook-sources"),
    ("POST", "/api/v1/admin/webhook-sources"),
    ("GET", "/api/v1/admin/webhook-receipts"),
    ("PUT", "/api/v1/tickets/sla-policies/{priority}"),
    ("POST", "/api/v1/care-plans/rules"),
    ("PUT", "/api/v1/care-plans/rules/{rule_id}"),
    ("DELETE", "/api/v1/care-plans/rules/{rule_id}"),
    ("POST", "/api/v1/pipeline/stages"),
    ("PATCH", "/api/v1/pipeline/stages/{stage_id}"),
    ("DELETE", "/api/v1/pipeline/stages/{stage_id}"),
    ("POST", "/api/v1/custom-fields"),
    ("PATCH", "/api/v1/custom-fields/{key}"),
    ("DELETE", "/api/v1/custom-fields/{key}"),
    ("POST", "/api/v1/analytics:recompute"),
]


class TestEveryOperationChecksScopes:
    async def test_a_principal_without_scopes_is_refused_everywhere(self, stack: Stack):
        ops = await operations(stack)
        assert len(ops) >= 80
        headers = token(stack, ["nobody"])  # authenticated, but no role grants anything
        answers = {f"{m} {p}": (await call(stack, m, p, headers)).status_code for m, p in ops}
        assert {op: code for op, code in answers.items() if code != 403} == {}

    async def test_the_read_only_analyst_can_change_nothing(self, stack: Stack):
        headers = stack.auth("analyst")
        writes = [(m, p) for m, p in await operations(stack) if m != "GET"]
        # Reading that takes a body is not a change: a rule preview.
        reading = {("POST", "/api/v1/segments:preview")}
        answers = {
            f"{m} {p}": (await call(stack, m, p, headers)).status_code
            for m, p in writes
            if (m, p) not in reading
        }
        assert {op: code for op, code in answers.items() if code != 403} == {}


class TestAdministration:
    async def test_admin_functions_exist_in_the_spec(self, stack: Stack):
        ops = set(await operations(stack))
        assert [op for op in ADMIN_ONLY if op not in ops] == []

    @pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
    async def test_every_other_role_is_refused(self, stack: Stack, role: str):
        headers = stack.auth(role)
        answers = {}
        for method, path in ADMIN_ONLY:
            response = await call(stack, method, path, headers)
            answers[f"{method} {path}"] = response.status_code
            if response.status_code == 403:
                assert response.headers["content-type"] == PROBLEM
        assert {op: code for op, code in answers.items() if code != 403} == {}

    async def test_an_admin_is_not_refused(self, stack: Stack):
        # The control: the same calls as an admin get past authorization (404/422/200…).
        headers = stack.auth("admin")
        for method, path in ADMIN_ONLY:
            response = await call(stack, method, path, headers)
            assert response.status_code not in (401, 403), (method, path, response.text)


class TestWebhookEndpointsBelongToTheirOwner:
    async def test_another_partner_cannot_see_or_change_an_endpoint(self, stack: Stack):
        owner = stack.auth("partner", f"shop-{uuid.uuid4().hex[:6]}")
        other = stack.auth("partner", f"shop-{uuid.uuid4().hex[:6]}")
        created = await stack.client.post(
            "/api/v1/webhook-endpoints",
            json={"url": "https://93.184.216.34/own", "event_types": ["rapport.order.*"]},
            headers=owner,
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()["id"]
        base = f"/api/v1/webhook-endpoints/{endpoint}"
        try:
            assert (await stack.client.get(base, headers=owner)).status_code == 200
            listed = await stack.client.get("/api/v1/webhook-endpoints", headers=other)
            assert endpoint not in [e["id"] for e in listed.json()["items"]]
            for method, path, body in (
                ("GET", base, None),
                ("PATCH", base, {"enabled": False}),
                ("DELETE", base, None),
                ("GET", f"{base}/attempts", None),
                ("GET", f"{base}/deliveries", None),
                ("POST", f"{base}/secrets", {}),
                ("POST", f"{base}/replay", {"since": "2026-01-01T00:00:00Z"}),
            ):
                response = await stack.client.request(method, path, json=body, headers=other)
                assert response.status_code == 404, (method, path, response.text)
            still = await stack.client.get(base, headers=owner)
            assert still.json()["enabled"] is True
        finally:
            await stack.client.delete(base, headers=owner)

    @pytest.mark.parametrize("role", ["sales", "marketing", "support", "analyst"])
    async def test_roles_without_subscribe_cannot_manage_endpoints(self, stack: Stack, role: str):
        response = await stack.client.post(
            "/api/v1/webhook-endpoints",
            json={"url": "https://93.184.216.34/x", "event_types": ["rapport.order.*"]},
            headers=stack.auth(role),
        )
        assert response.status_code == 403, response.text


class TestNarrowedCredentials:
    async def test_a_token_narrowed_to_reading_cannot_write(self, stack: Stack):
        headers = token(stack, ["admin"], scope="customers:read")
        read = await stack.client.get("/api/v1/customers", headers=headers)
        write = await stack.client.post(
            "/api/v1/customers", json={"display_name": "Narrow"}, headers=headers
        )
        admin = await stack.client.get("/api/v1/admin/api-keys", headers=headers)
        assert (read.status_code, write.status_code, admin.status_code) == (200, 403, 403)

    async def test_a_scope_claim_cannot_widen_a_role(self, stack: Stack):
        headers = token(stack, ["analyst"], scope="admin customers:write *")
        write = await stack.client.post(
            "/api/v1/customers", json={"display_name": "Wide"}, headers=headers
        )
        admin = await stack.client.get("/api/v1/admin/api-keys", headers=headers)
        assert (write.status_code, admin.status_code) == (403, 403)

    async def test_an_api_key_narrowed_at_creation_keeps_to_its_scopes(self, stack: Stack):
        created = await stack.client.post(
            "/api/v1/admin/api-keys",
            json={
                "name": f"narrow {uuid.uuid4().hex[:6]}",
                "role": "partner",
                "scopes": ["customers:read"],
            },
            headers=stack.auth(),
        )
        assert created.status_code == 201, created.text
        headers = {"X-API-Key": created.json()["key"]}
        read = await stack.client.get("/api/v1/customers", headers=headers)
        write = await stack.client.post(
            "/api/v1/orders", json={"customer_id": str(uuid.uuid4())}, headers=headers
        )
        assert (read.status_code, write.status_code) == (200, 403)
