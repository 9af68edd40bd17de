"""The edge's parts on their own: route table, token buckets, credential cache, OpenAPI
merge rules."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from starlette.datastructures import Headers

from gateway.edge import CREDENTIAL_TTL_S, Credentials
from gateway.openapi import merge_documents
from gateway.ratelimit import RateLimiter
from gateway.routes import LOCAL, ROUTES, Route, RouteTable
from shared.auth import Principal, verify_internal_token
from shared.errors import Unauthorized

SECRET = "unit-test-internal-secret-0123456789"


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestRouteTable:
    table = RouteTable(ROUTES)

    @pytest.mark.parametrize(
        ("path", "owner"),
        [
            ("/customers", "customer360"),
            ("/customers/", "customer360"),
            ("/customers/7c1e", "customer360"),
            ("/customers/7c1e/notes", "customer360"),
            ("/customers/7c1e/features", "segmentation"),
            ("/customers/7c1e/features/rfm", "segmentation"),
            ("/customers/7c1e/segments", "segmentation"),
            ("/customers/7c1e/recommendations", "orders"),
            ("/customers/7c1e/loyalty", "orders"),
            ("/promotions/p1/codes:issue", "orders"),
            ("/coupons/SPRING-15", "orders"),
            ("/loyalty/tiers:evaluate", "orders"),
            ("/segments", "segmentation"),
            ("/segments/vip/members", "segmentation"),
            ("/segments:preview", "segmentation"),
            ("/segments/vip/export", "segmentation"),
            ("/interactions", "interactions"),
            ("/tickets/9", "interactions"),
            ("/surveys", "interactions"),
            ("/tasks/9:complete", "interactions"),
            ("/care-plans/rules/1", "interactions"),
            ("/campaigns/7:start", "interactions"),
            ("/campaigns/7/report", "interactions"),
            ("/products/sku-1", "orders"),
            ("/orders", "orders"),
            ("/deals/3", "orders"),
            ("/pipeline", "orders"),
            ("/admin/api-keys", LOCAL),
            ("/customersx", None),
            ("/features", None),
            ("/", None),
            ("", None),
        ],
    )
    def test_a_path_goes_to_its_owner(self, path: str, owner: str | None):
        assert self.table.owner(path) == owner

    def test_the_most_specific_pattern_wins_whatever_the_order(self):
        table = RouteTable(reversed(ROUTES))
        assert table.owner("/customers/1/features") == "segmentation"
        literal = RouteTable([Route("/a/*/c", "wild"), Route("/a/b/c", "literal")])
        assert literal.owner("/a/b/c") == "literal"
        assert literal.owner("/a/x/c") == "wild"

    def test_the_same_pattern_twice_is_refused(self):
        with pytest.raises(ValueError, match="overlap"):
            RouteTable([Route("/a/*", "x"), Route("/a/*", "y")])

    @pytest.mark.parametrize("pattern", ["customers", "/customers/", "/*/x", "/a//b"])
    def test_malformed_patterns_are_refused(self, pattern: str):
        with pytest.raises(ValueError, match="pattern"):
            Route(pattern, "x")

    def test_upstreams_are_listed_once_in_declared_order(self):
        assert self.table.upstreams == ("segmentation", "customer360", "interactions", "orders")


class TestRateLimiter:
    def test_a_full_bucket_then_a_refusal_then_a_refill(self):
        clock = Clock()
        limiter = RateLimiter({"default": 60, "sales": 120}, clock=clock)
        policy = limiter.policy_for(["sales"])
        decisions = [limiter.acquire("u", policy) for _ in range(121)]
        assert all(d.allowed for d in decisions[:120])
        assert decisions[0].as_dict() == {
            "ratelimit-policy": '"sales";q=120;w=60',
            "ratelimit": '"sales";r=119;t=0',
        }
        assert decisions[119].as_dict()["ratelimit"] == '"sales";r=0;t=1'
        refused = decisions[120]
        assert not refused.allowed
        assert refused.retry_after_s == 1
        assert refused.as_dict()["retry-after"] == "1"
        clock.now += 0.5  # two tokens a second
        assert limiter.acquire("u", policy).allowed
        assert not limiter.acquire("u", policy).allowed

    def test_the_highest_role_wins_and_unknown_roles_get_the_default(self):
        limiter = RateLimiter({"default": 60, "sales": 120, "admin": 600})
        assert limiter.policy_for(["sales", "admin"]).quota == 600
        assert limiter.policy_for(["stranger"]).name == "default"
        assert limiter.policy_for([]).quota == 60

    def test_buckets_are_per_key(self):
        limiter = RateLimiter({"default": 1}, clock=Clock())
        policy = limiter.policy_for([])
        assert limiter.acquire("a", policy).allowed
        assert not limiter.acquire("a", policy).allowed
        assert limiter.acquire("b", policy).allowed

    def test_idle_buckets_are_dropped(self):
        clock = Clock()
        limiter = RateLimiter({"default": 10}, clock=clock)
        policy = limiter.policy_for([])
        for key in "abc":
            limiter.acquire(key, policy)
        clock.now += 61
        limiter.acquire("d", policy)
        assert len(limiter) == 1

    def test_a_default_policy_is_required(self):
        with pytest.raises(ValueError, match="default"):
            RateLimiter({"sales": 10})


def _jwt(exp: float) -> bytes:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=")
    return b"Bearer eyJhbGciOiJIUzI1NiJ9." + payload + b".c2lnbmF0dXJl"


class FakeAuthenticator:
    def __init__(self) -> None:
        self.calls = 0
        self.refuse = False

    async def authenticate(self, headers: Headers) -> Principal:
        self.calls += 1
        if self.refuse:
            raise Unauthorized("no")
        return Principal(subject="u-1", scopes=frozenset({"customers:read"}), roles=("sales",))


def _scope(authorization: bytes | None = None, api_key: bytes | None = None) -> dict[str, Any]:
    headers = []
    if authorization is not None:
        headers.append((b"authorization", authorization))
    if api_key is not None:
        headers.append((b"x-api-key", api_key))
    return {"type": "http", "headers": headers}


class TestCredentials:
    def make(self) -> tuple[Credentials, FakeAuthenticator, Clock, Clock]:
        authenticator = FakeAuthenticator()
        clock, wall = Clock(), Clock(time.time())
        credentials = Credentials(
            authenticator,
            RateLimiter({"default": 60, "sales": 120}),
            internal_secret=SECRET,
            internal_ttl_s=120,
            clock=clock,
            wall_clock=wall,
        )
        return credentials, authenticator, clock, wall

    async def resolve(self, credentials: Credentials, authorization=None, api_key=None):
        key = Credentials.key(authorization, api_key)
        cached = credentials.cached(key) if key is not None else None
        if cached is not None:
            return cached
        return await credentials.authenticate(_scope(authorization, api_key), key, authorization)

    @pytest.mark.asyncio(loop_scope="session")
    async def test_a_jwt_is_trusted_for_thirty_seconds_at_most(self):
        credentials, authenticator, clock, wall = self.make()
        token = _jwt(wall.now + 3600)
        identity = await self.resolve(credentials, token)
        assert identity.policy.name == "sales"
        assert identity.limit_key == "user:u-1"
        clock.now += CREDENTIAL_TTL_S - 1
        await self.resolve(credentials, token)
        assert authenticator.calls == 1
        clock.now += 2
        await self.resolve(credentials, token)
        assert authenticator.calls == 2

    @pytest.mark.asyncio(loop_scope="session")
    async def test_a_jwt_is_never_trusted_past_its_exp(self):
        credentials, authenticator, clock, wall = self.make()
        token = _jwt(wall.now + 5)
        await self.resolve(credentials, token)
        clock.now += 4
        await self.resolve(credentials, token)
        assert authenticator.calls == 1
        clock.now += 1.5
        await self.resolve(credentials, token)
        assert authenticator.calls == 2

    @pytest.mark.asyncio(loop_scope="session")
    async def test_api_keys_and_failures_are_never_cached(self):
        credentials, authenticator, _, _ = self.make()
        for _ in range(2):
            await self.resolve(credentials, api_key=b"rpk_abc")
            await self.resolve(credentials, b"Bearer rpk_abc")
        assert authenticator.calls == 4
        authenticator.refuse = True
        token = _jwt(time.time() + 3600)
        for _ in range(2):
            with pytest.raises(Unauthorized):
                await self.resolve(credentials, token)
        assert authenticator.calls == 6
        assert len(credentials) == 0

    @pytest.mark.asyncio(loop_scope="session")
    async def test_the_internal_token_is_reused_for_half_its_ttl(self):
        credentials, _, clock, _ = self.make()
        identity = await self.resolve(credentials, _jwt(time.time() + 3600))
        first = credentials.bearer(identity)
        principal = verify_internal_token(first.removeprefix("Bearer "), SECRET)
        assert principal.subject == "u-1"
        assert principal.has("customers:read")
        clock.now += 59
        assert credentials.bearer(identity) == first
        clock.now += 2
        assert credentials.bearer(identity) != first

    @pytest.mark.asyncio(loop_scope="session")
    async def test_the_same_principal_shares_one_identity_across_tokens(self):
        credentials, _, _, wall = self.make()
        a = await self.resolve(credentials, _jwt(wall.now + 100))
        b = await self.resolve(credentials, _jwt(wall.now + 200))
        assert a is b


def _schema_doc(schemas: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def _get(ref: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": "read",
            "responses": {"200": {"content": {"application/json": {"schema": {"$ref": ref}}}}},
        }
    }


class TestMergeRules:
    TABLE = RouteTable([Route("/a", "alpha"), Route("/b", "beta"), Route("/admin", LOCAL)])

    def test_identical_components_merge_and_different_ones_are_prefixed_with_refs_rewritten(
        self,
    ):
        item = {"type": "object", "properties": {"id": {"type": "string"}}}
        alpha = _schema_doc(
            {
                "Item": item,
                "Page": {"properties": {"items": {"$ref": "#/components/schemas/Item"}}},
            },
            {"/a": _get("#/components/schemas/Page")},
        )
        beta = _schema_doc(
            {
                "Item": {"type": "object", "properties": {"id": {"type": "integer"}}},
                # Same text as alpha's Page, but its Item differs: it must be renamed too.
                "Page": {"properties": {"items": {"$ref": "#/components/schemas/Item"}}},
                "Shared": {"type": "string"},
            },
            {"/b": _get("#/components/schemas/Page"), "/b/x": _get("#/components/schemas/Shared")},
        )
        gateway = _schema_doc({"Shared": {"type": "string"}}, {})
        merged = merge_documents(gateway, {"alpha": alpha, "beta": beta}, self.TABLE)
        schemas = merged["components"]["schemas"]
        assert set(schemas) == {"Item", "Page", "beta_Item", "beta_Page", "Shared"}
        assert schemas["beta_Page"]["properties"]["items"]["$ref"] == (
            "#/components/schemas/beta_Item"
        )
        ok = merged["paths"]["/api/v1/b"]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"] == (
            "#/components/schemas/beta_Page"
        )
        # operationIds stay unique
        assert merged["paths"]["/api/v1/b"]["get"]["operationId"] == "beta_read"

    def test_paths_a_service_does_not_own_are_left_out(self):
        alpha = _schema_doc({}, {"/a": _get("#/x"), "/b": _get("#/x"), "/health": _get("#/x")})
        merged = merge_documents(_schema_doc({}, {}), {"alpha": alpha, "beta": None}, self.TABLE)
        assert set(merged["paths"]) == {"/api/v1/a"}
        assert merged["info"]["x-rapport-services"] == {"alpha": "ok", "beta": "unavailable"}

    def test_gateway_paths_the_table_sends_to_a_service_are_left_out(self):
        gateway = _schema_doc({}, {"/api/v1/a/x": _get("#/x"), "/api/v1/admin/k": _get("#/x")})
        merged = merge_documents(gateway, {}, self.TABLE)
        assert set(merged["paths"]) == {"/api/v1/admin/k"}
