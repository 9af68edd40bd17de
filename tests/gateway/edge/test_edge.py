"""The edge in front of everything: authentication, rate limits, CORS, local routes, and a
service reached directly."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.gateway.edge.conftest import (
    CORS_ORIGIN,
    RATE_LIMITS,
    Gateway,
    gateway_settings,
    running_gateway,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"


class TestAuthentication:
    async def test_a_request_without_credentials_is_a_401_problem(self, lab: Gateway):
        response = await lab.client.get("/api/v1/customers")
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
        problem = response.json()
        assert problem["type"] == "/problems/unauthorized"
        assert problem["instance"] == "/api/v1/customers"
        assert problem["request_id"] == response.headers["x-request-id"]
        assert "ratelimit" not in response.headers

    async def test_a_forged_token_is_refused(self, lab: Gateway):
        token = lab.token()
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        response = await lab.client.get(
            "/api/v1/customers", headers={"Authorization": f"Bearer {forged}"}
        )
        assert response.status_code == 401

    async def test_a_valid_token_is_verified_once_and_then_served_from_the_cache(
        self, lab: Gateway
    ):
        credentials = lab.app.state.gateway.credentials
        headers = lab.auth("sales")
        first = await lab.client.get("/api/v1/interactions/x", headers=headers)
        cached = len(credentials)
        second = await lab.client.get("/api/v1/interactions/x", headers=headers)
        assert first.status_code == second.status_code == 200
        assert len(credentials) == cached
        token_1 = dict(first.json()["headers"])["authorization"]
        token_2 = dict(second.json()["headers"])["authorization"]
        assert token_1 == token_2  # the internal token is reused, not minted per request

    async def test_webhooks_are_not_authenticated_by_the_edge(self, lab: Gateway):
        response = await lab.client.post("/webhooks/no-such-source", content=b"{}")
        # The webhook front door answers for itself (unknown source / bad signature).
        assert response.status_code in (401, 404)
        assert "ratelimit" not in response.headers

    async def test_campaign_tracking_links_pass_without_credentials_or_a_token(self, lab: Gateway):
        response = await lab.client.get(
            "/api/v1/campaign-links/some-token", headers={"Authorization": "Bearer junk"}
        )
        assert response.status_code == 200
        forwarded = dict(response.json()["headers"])
        assert "authorization" not in forwarded  # neither the caller's nor an internal one
        assert response.json()["path"] == "/campaign-links/some-token"


class TestGatewayRoutes:
    async def test_admin_routes_get_the_principal_from_the_edge(self, lab: Gateway):
        response = await lab.client.get("/api/v1/admin/api-keys", headers=lab.auth("admin"))
        assert response.status_code == 200, response.text
        assert "items" in response.json()
        assert response.headers["ratelimit-policy"] == '"admin";q=1000000;w=60'

    async def test_admin_routes_refuse_other_roles(self, lab: Gateway):
        response = await lab.client.get("/api/v1/admin/api-keys", headers=lab.auth("sales"))
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM

    async def test_an_unknown_public_path_is_a_404_problem_after_authentication(self, lab: Gateway):
        anonymous = await lab.client.get("/api/v1/nothing-here")
        assert anonymous.status_code == 401
        response = await lab.client.get("/api/v1/nothing-here", headers=lab.auth())
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM

    async def test_a_services_problem_names_the_url_the_client_called(self, lab: Gateway):
        missing = uuid.uuid4()
        response = await lab.client.get(f"/api/v1/customers/{missing}", headers=lab.auth())
        assert response.status_code == 404
        assert response.json()["instance"] == f"/api/v1/customers/{missing}"
        # a caller's own X-Forwarded-Prefix is not passed on
        spoofed = await lab.client.get(
            f"/api/v1/customers/{missing}",
            headers={**lab.auth(), "X-Forwarded-Prefix": "/elsewhere"},
        )
        assert spoofed.json()["instance"] == f"/api/v1/customers/{missing}"

    async def test_health_needs_no_credentials(self, lab: Gateway):
        response = await lab.client.get("/health")
        assert response.status_code == 200


class TestRateLimits:
    async def test_answers_carry_the_policy_and_what_is_left(self, lab: Gateway):
        headers = lab.auth("marketing")
        first = await lab.client.get("/api/v1/interactions/x", headers=headers)
        second = await lab.client.get("/api/v1/interactions/x", headers=headers)
        quota = RATE_LIMITS["marketing"]
        assert first.status_code == second.status_code == 200
        assert first.headers["ratelimit-policy"] == f'"marketing";q={quota};w=60'
        assert first.headers["ratelimit"] == f'"marketing";r={quota - 1};t=0'
        assert second.headers["ratelimit"] == f'"marketing";r={quota - 2};t=0'

    async def test_over_the_limit_is_a_429_problem_with_retry_after(self, lab: Gateway):
        headers = lab.auth("analyst", subject=f"analyst-{uuid.uuid4().hex[:6]}")
        answers = [
            await lab.client.get("/api/v1/interactions/x", headers=headers) for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["ratelimit"] for a in answers[:3]] == [
            '"analyst";r=2;t=0',
            '"analyst";r=1;t=0',
            '"analyst";r=0;t=20',
        ]
        refused = answers[3]
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "/problems/too-many-requests"
        assert refused.headers["ratelimit-policy"] == '"analyst";q=3;w=60'
        assert refused.headers["ratelimit"] == '"analyst";r=0;t=20'
        assert refused.headers["retry-after"] == "20"

    async def test_credential_less_links_are_limited_per_client_address(
        self, make_settings: Any, echo_url: str
    ):
        settings = gateway_settings(make_settings, interactions=echo_url)
        settings = settings.model_copy(update={"rate_limits": {**RATE_LIMITS, "public": 2}})
        async with running_gateway(settings) as gateway:
            answers = [
                await gateway.client.get(f"/api/v1/campaign-links/token-{n}") for n in range(3)
            ]
            assert [a.status_code for a in answers] == [200, 200, 429]
            assert answers[0].headers["ratelimit"] == '"public";r=1;t=0'
            refused = answers[2]
            assert refused.json()["type"] == "/problems/too-many-requests"
            assert refused.json()["detail"] == "more than 2 requests per minute from this address"
            assert refused.headers["retry-after"] == "30"
            # an authenticated caller from the same address has a bucket of their own
            mine = await gateway.client.get("/api/v1/interactions/x", headers=gateway.auth("sales"))
            assert mine.status_code == 200

    async def test_the_bucket_is_per_principal_not_per_token(self, lab: Gateway):
        subject = f"analyst-{uuid.uuid4().hex[:6]}"
        for _ in range(3):
            response = await lab.client.get(
                "/api/v1/interactions/x", headers=lab.auth("analyst", subject=subject)
            )
            assert response.status_code == 200
        fresh_token = lab.auth("analyst", subject=subject)
        response = await lab.client.get("/api/v1/interactions/x", headers=fresh_token)
        assert response.status_code == 429
        other = await lab.client.get("/api/v1/interactions/x", headers=lab.auth("analyst"))
        assert other.status_code == 200


class TestCors:
    async def test_a_preflight_is_answered_without_credentials(self, lab: Gateway):
        response = await lab.client.options(
            "/api/v1/customers",
            headers={
                "Origin": CORS_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == CORS_ORIGIN
        assert "POST" in response.headers["access-control-allow-methods"]
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed
        assert "idempotency-key" in allowed

    async def test_a_preflight_from_another_origin_is_refused(self, lab: Gateway):
        response = await lab.client.options(
            "/api/v1/customers",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_answers_to_an_allowed_origin_expose_the_rate_limit_fields(self, lab: Gateway):
        response = await lab.client.get(
            "/api/v1/interactions/x", headers={**lab.auth(), "Origin": CORS_ORIGIN}
        )
        assert response.headers["access-control-allow-origin"] == CORS_ORIGIN
        exposed = response.headers["access-control-expose-headers"].lower()
        assert {"ratelimit", "ratelimit-policy", "retry-after", "x-request-id"} <= {
            h.strip() for h in exposed.split(",")
        }
        problem = await lab.client.get("/api/v1/customers", headers={"Origin": CORS_ORIGIN})
        assert problem.status_code == 401
        assert problem.headers["access-control-allow-origin"] == CORS_ORIGIN


class TestServiceReachedDirectly:
    async def test_without_an_internal_token_a_service_refuses(self, services: dict[str, str]):
        async with httpx.AsyncClient(base_url=services["customer360"]) as client:
            response = await client.get(f"/customers/{uuid.uuid4()}")
            assert response.status_code == 401
            assert response.headers["content-type"] == PROBLEM

    async def test_the_callers_own_token_is_not_an_internal_token(
        self, services: dict[str, str], lab: Gateway
    ):
        async with httpx.AsyncClient(base_url=services["customer360"]) as client:
            response = await client.get(f"/customers/{uuid.uuid4()}", headers=lab.auth())
            assert response.status_code == 401
