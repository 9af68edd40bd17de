"""OWASP API2:2023 — Broken Authentication.

Only a genuine, current credential gets in: a JWT signed with the right key, of an accepted
type, for this issuer and audience, not expired, not ``alg=none``; or a live API key.
Everything else is a ``401`` problem with an RFC 6750 ``WWW-Authenticate`` challenge, and a
revoked API key stops working at once on the gateway that revoked it. A valid token sent
straight to a service (bypassing the gateway) is refused too.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import Principal, mint_internal_token
from shared.settings import DEV_INTERNAL_SECRET
from tests.security.conftest import PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

PATH = "/api/v1/customers"


def claims(stack: Stack, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": stack.settings.jwt_issuer,
        "aud": stack.settings.jwt_audience,
        "sub": f"user-{uuid.uuid4().hex[:8]}",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "roles": ["admin"],
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def signed(stack: Stack, secret: str | None = None, typ: str = "at+jwt", **overrides: Any) -> str:
    return jwt.encode(
        claims(stack, **overrides),
        secret or stack.settings.dev_jwt_secret,
        algorithm="HS256",
        headers={"typ": typ},
    )


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def refused(stack: Stack, token: str) -> httpx.Response:
    response = await stack.client.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    return response


class TestTokens:
    async def test_the_well_formed_token_is_accepted(self, stack: Stack):
        # The control for every refusal below: the same claims, correctly signed.
        response = await stack.client.get(
            PATH, headers={"Authorization": f"Bearer {signed(stack)}"}
        )
        assert response.status_code == 200, response.text

    async def test_no_credentials_is_a_challenge_without_an_error_code(self, stack: Stack):
        response = await stack.client.get(PATH)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="rapport"'

    async def test_an_expired_token_is_refused(self, stack: Stack):
        past = int(time.time()) - 3600
        response = await refused(stack, signed(stack, iat=past - 60, nbf=past - 60, exp=past))
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    async def test_a_token_not_yet_valid_is_refused(self, stack: Stack):
        await refused(stack, signed(stack, nbf=int(time.time()) + 3600))

    async def test_a_token_signed_with_another_secret_is_refused(self, stack: Stack):
        await refused(stack, signed(stack, secret="x" * 48))

    async def test_a_tampered_payload_is_refused(self, stack: Stack):
        header, _, signature = signed(stack, roles=["analyst"]).split(".")
        promoted = b64(claims(stack, roles=["admin"]))
        await refused(stack, f"{header}.{promoted}.{signature}")

    @pytest.mark.parametrize("alg", ["none", "None", "NONE"])
    async def test_alg_none_is_refused(self, stack: Stack, alg: str):
        token = f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64(claims(stack))}."
        await refused(stack, token)

    async def test_an_rs256_token_is_refused_when_no_identity_provider_is_configured(
        self, stack: Stack
    ):
        # RS256 "signed" with the HS secret: the algorithm-confusion attack.
        header = b64({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})
        body = b64(claims(stack))
        await refused(stack, f"{header}.{body}.{b64({'sig': 'x'})}")

    async def test_a_dev_token_with_a_kid_is_refused(self, stack: Stack):
        token = jwt.encode(
            claims(stack),
            stack.settings.dev_jwt_secret,
            algorithm="HS256",
            headers={"typ": "at+jwt", "kid": "dev"},
        )
        await refused(stack, token)

    @pytest.mark.parametrize(
        "overrides",
        [
            {"aud": "someone-else"},
            {"iss": "https://evil.example"},
            {"exp": None},
            {"sub": None},
            {"iss": None},
            {"aud": None},
        ],
        ids=["audience", "issuer", "no-exp", "no-sub", "no-iss", "no-aud"],
    )
    async def test_wrong_or_missing_registered_claims_are_refused(
        self, stack: Stack, overrides: dict[str, Any]
    ):
        await refused(stack, signed(stack, **overrides))

    async def test_a_token_of_another_type_is_refused(self, stack: Stack):
        await refused(stack, signed(stack, typ="id+jwt"))

    async def test_an_internal_service_token_is_not_accepted_at_the_edge(self, stack: Stack):
        internal = mint_internal_token(
            Principal(subject="svc", kind="service", scopes=frozenset({"admin"})),
            DEV_INTERNAL_SECRET,
        )
        await refused(stack, internal)

    async def test_a_malformed_authorization_header_is_an_invalid_request(self, stack: Stack):
        for value in ("Basic dXNlcjpwYXNz", "Bearer", "Token abc"):
            response = await stack.client.get(PATH, headers={"Authorization": value})
            assert response.status_code == 401, value
            assert 'error="invalid_request"' in response.headers["www-authenticate"], value

    async def test_a_failed_token_is_never_cached(self, stack: Stack):
        token = signed(stack, secret="y" * 48)
        for _ in range(3):
            await refused(stack, token)
        assert len(stack.gateway.app.state.gateway.credentials) >= 0
        key = stack.gateway.app.state.gateway.credentials.key(f"Bearer {token}".encode(), None)
        assert key is not None
        assert stack.gateway.app.state.gateway.credentials.cached(key) is None


class TestApiKeys:
    async def create_key(self, stack: Stack, **body: Any) -> dict[str, Any]:
        response = await stack.client.post(
            "/api/v1/admin/api-keys",
            json={"name": f"sec {uuid.uuid4().hex[:6]}", "role": "partner", **body},
            headers=stack.auth("admin"),
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def test_a_revoked_key_is_refused_at_once(self, stack: Stack):
        created = await self.create_key(stack)
        headers = {"X-API-Key": created["key"]}
        assert (await stack.client.get(PATH, headers=headers)).status_code == 200
        revoked = await stack.client.delete(
            f"/api/v1/admin/api-keys/{created['id']}", headers=stack.auth("admin")
        )
        assert revoked.status_code == 204
        for header in (headers, {"Authorization": f"Bearer {created['key']}"}):
            response = await stack.client.get(PATH, headers=header)
            assert response.status_code == 401, response.text
            assert response.headers["content-type"] == PROBLEM

    async def test_a_key_with_a_wrong_checksum_or_secret_is_refused(self, stack: Stack):
        key = (await self.create_key(stack))["key"]
        last = key[-1]
        broken = key[:-1] + ("A" if last != "A" else "B")
        response = await stack.client.get(PATH, headers={"X-API-Key": broken})
        assert response.status_code == 401
        unknown = await stack.client.get(PATH, headers={"X-API-Key": "rpk_" + "a" * 40})
        assert unknown.status_code == 401

    async def test_both_a_token_and_a_key_is_refused_as_ambiguous(self, stack: Stack):
        key = (await self.create_key(stack))["key"]
        response = await stack.client.get(
            PATH, headers={"X-API-Key": key, "Authorization": f"Bearer {signed(stack)}"}
        )
        assert response.status_code == 401
        assert 'error="invalid_request"' in response.headers["www-authenticate"]


class TestServicesBehindTheGateway:
    async def test_a_valid_external_token_sent_straight_to_a_service_is_refused(self, stack: Stack):
        token = signed(stack)
        for name, url in stack.urls.items():
            async with httpx.AsyncClient(base_url=url) as client:
                path = {
                    "customer360": "/customers",
                    "interactions": "/interactions",
                    "orders": "/orders",
                    "segmentation": "/segments",
                }[name]
                response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401, (name, response.text)
                assert response.headers["content-type"] == PROBLEM

    async def test_an_internal_token_signed_with_another_secret_is_refused_by_services(
        self, stack: Stack
    ):
        forged = mint_internal_token(
            Principal(subject="x", scopes=frozenset({"customers:read", "admin"})), "z" * 48
        )
        async with httpx.AsyncClient(base_url=stack.urls["customer360"]) as client:
            response = await client.get("/customers", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
