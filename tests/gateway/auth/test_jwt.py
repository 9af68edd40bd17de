"""JWT bearer tokens at the gateway: what is accepted, every attack refused, and the JWKS
cache (caching, refresh on an unknown kid, rate limits, a key rollover without 401s)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization

from gateway.auth import JwksCache, JwtVerifier, mint_dev_token
from gateway.auth.roles import ROLE_SCOPES
from shared.auth import Principal, mint_internal_token
from shared.errors import ServiceUnavailable, Unauthorized
from shared.settings import DEV_INTERNAL_SECRET
from tests.gateway.auth.conftest import (
    JWKS_URL,
    FakeClock,
    FakeIdp,
    Refusal,
    SigningKey,
    claims,
    ec_key,
    jwt_settings,
    refusal,
    rsa_key,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

RSA_A = rsa_key("rsa-a")
RSA_B = rsa_key("rsa-b")
EC_C = ec_key("ec-c")
ATTACKER = rsa_key("attacker")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand, as an attacker would."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}"


def hs256_with(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def refused(authenticator, token: str) -> Refusal:
    error = await refusal(authenticator, {"authorization": f"Bearer {token}"})
    assert 'error="invalid_token"' in error.challenge
    return error


@pytest_asyncio.fixture(loop_scope="session")
async def cache(idp: FakeIdp, clock: FakeClock):
    async with idp.client() as http:
        yield JwksCache(http, JWKS_URL, cache_s=3600, clock=clock)


@pytest.fixture
def verifier(cache: JwksCache) -> JwtVerifier:
    return JwtVerifier(jwt_settings(), cache)


class TestValidTokens:
    async def test_accepts_an_rs256_token_and_maps_its_roles_to_scopes(self, offline_authenticator):
        token = FakeIdp.token(RSA_A, roles=["sales"], name="Ada")
        principal = await offline_authenticator.authenticate({"authorization": f"Bearer {token}"})
        assert principal.subject == "user-42"
        assert principal.kind == "user"
        assert principal.roles == ("sales",)
        assert principal.scopes == ROLE_SCOPES["sales"]
        assert principal.name == "Ada"
        assert (principal.scope_mode, principal.team) == ("team", "emea")

    async def test_accepts_an_es256_token(self, offline_authenticator):
        token = FakeIdp.token(EC_C, roles=["analyst"])
        principal = await offline_authenticator.authenticate({"authorization": f"Bearer {token}"})
        assert principal.scopes == ROLE_SCOPES["analyst"]

    @pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+jwt", "AT+JWT"])
    async def test_accepts_the_jwt_and_access_token_types(self, verifier, typ):
        principal = await verifier.verify(FakeIdp.token(RSA_A, header={"typ": typ}))
        assert principal.subject == "user-42"

    async def test_reads_roles_from_a_nested_claim(self, cache):
        verifier = JwtVerifier(jwt_settings(roles_claim="realm_access.roles"), cache)
        token = FakeIdp.token(RSA_A, roles=None, realm_access={"roles": ["support", "x"]})
        principal = await verifier.verify(token)
        assert principal.roles == ("support", "x")
        assert principal.scopes == ROLE_SCOPES["support"]

    async def test_reads_roles_from_a_namespaced_claim(self, cache):
        verifier = JwtVerifier(jwt_settings(roles_claim="https://rapport.example/roles"), cache)
        namespaced: dict[str, Any] = {"https://rapport.example/roles": ["marketing"]}
        token = FakeIdp.token(RSA_A, roles=None, **namespaced)
        assert (await verifier.verify(token)).scopes == ROLE_SCOPES["marketing"]

    async def test_the_scope_claim_narrows_the_roles_scopes(self, verifier):
        token = FakeIdp.token(RSA_A, roles=["sales"], scope="openid customers:read orders:*")
        principal = await verifier.verify(token)
        assert principal.scopes == {"customers:read", "orders:read", "orders:write"}

    async def test_the_scope_claim_never_widens_the_roles_scopes(self, verifier):
        token = FakeIdp.token(RSA_A, roles=["analyst"], scope="customers:read admin * webhooks:*")
        principal = await verifier.verify(token)
        assert principal.scopes == ROLE_SCOPES["analyst"]
        assert not principal.has("admin")
        token = FakeIdp.token(RSA_A, roles=["analyst"], scope="customers:read admin")
        assert (await verifier.verify(token)).scopes == {"customers:read"}

    async def test_a_scope_claim_naming_no_rapport_scope_does_not_narrow(self, verifier):
        token = FakeIdp.token(RSA_A, roles=["support"], scope="openid profile email")
        assert (await verifier.verify(token)).scopes == ROLE_SCOPES["support"]

    async def test_a_token_without_known_roles_authenticates_with_no_scopes(self, verifier):
        principal = await verifier.verify(FakeIdp.token(RSA_A, roles=["intern"]))
        assert principal.scopes == frozenset()
        assert principal.scope_mode == "own"

    async def test_a_token_may_narrow_its_data_scope(self, verifier):
        token = FakeIdp.token(RSA_A, roles=["support"], scope_mode="team", team="tier-2")
        principal = await verifier.verify(token)
        assert (principal.scope_mode, principal.team) == ("team", "tier-2")
        principal = await verifier.verify(FakeIdp.token(RSA_A, roles=["sales"], scope_mode="own"))
        assert principal.scope_mode == "own"

    async def test_a_token_cannot_widen_its_data_scope(self, verifier):
        principal = await verifier.verify(FakeIdp.token(RSA_A, roles=["sales"], scope_mode="all"))
        assert principal.scope_mode == "team"
        token = FakeIdp.token(RSA_A, roles=["sales"], team=None, scope_mode="all")
        assert (await verifier.verify(token)).scope_mode == "own"

    async def test_an_invalid_scope_mode_claim_is_refused(self, verifier):
        with pytest.raises(Unauthorized, match="scope_mode"):
            await verifier.verify(FakeIdp.token(RSA_A, scope_mode="everything"))

    async def test_accepts_a_dev_token_in_development_and_test(self, offline_authenticator):
        settings = jwt_settings()
        token = mint_dev_token(settings, role="marketing", subject="dev-1", team="uk")
        principal = await offline_authenticator.authenticate({"authorization": f"Bearer {token}"})
        assert principal.subject == "dev-1"
        assert principal.scopes == ROLE_SCOPES["marketing"]
        assert principal.team == "uk"


class TestTokenAttacks:
    async def test_refuses_an_unsigned_token_with_alg_none(self, offline_authenticator):
        token = forge({"alg": "none", "typ": "JWT"}, claims(roles=["admin"]))
        error = await refused(offline_authenticator, token)
        assert "'none' is refused" in error.detail

    async def test_refuses_hs256_signed_with_the_rsa_public_key_under_its_kid(
        self, offline_authenticator
    ):
        pem = RSA_A.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = hs256_with(pem, {"alg": "HS256", "typ": "JWT", "kid": "rsa-a"}, claims())
        error = await refused(offline_authenticator, token)
        assert "not allowed for this key" in error.detail

    async def test_refuses_hs256_signed_with_the_rsa_public_key_without_a_kid(
        self, offline_authenticator
    ):
        pem = RSA_A.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = hs256_with(pem, {"alg": "HS256", "typ": "JWT"}, claims(roles=["admin"]))
        error = await refused(offline_authenticator, token)
        assert "signature" in error.detail

    async def test_refuses_an_hs256_token_outside_development(self, cache):
        settings = jwt_settings()
        token = mint_dev_token(settings, role="admin")
        production = settings.model_copy(update={"environment": "production"})
        with pytest.raises(Unauthorized, match="only in development"):
            await JwtVerifier(production, cache).verify(token)

    async def test_refuses_an_hs256_token_when_no_dev_secret_is_set(self, cache):
        settings = jwt_settings()
        token = mint_dev_token(settings, role="admin")
        with pytest.raises(Unauthorized, match="only in development"):
            await JwtVerifier(jwt_settings(dev_jwt_secret=""), cache).verify(token)

    async def test_refuses_a_token_for_another_audience(self, offline_authenticator):
        error = await refused(offline_authenticator, FakeIdp.token(RSA_A, aud="another-api"))
        assert "aud" in error.detail

    async def test_refuses_a_token_from_another_issuer(self, offline_authenticator):
        token = FakeIdp.token(RSA_A, iss="https://evil.example.test/")
        error = await refused(offline_authenticator, token)
        assert "iss" in error.detail

    @pytest.mark.parametrize("typ", ["rapport-internal+jwt", "logout+jwt", "JWS", 42])
    async def test_refuses_a_token_of_another_type(self, offline_authenticator, typ):
        error = await refused(offline_authenticator, FakeIdp.token(RSA_A, header={"typ": typ}))
        assert "typ" in error.detail

    async def test_refuses_a_token_without_a_type(self, offline_authenticator):
        token = FakeIdp.token(RSA_A, header={"typ": None})
        assert "typ" not in jwt.get_unverified_header(token)
        error = await refused(offline_authenticator, token)
        assert "typ" in error.detail

    async def test_refuses_an_expired_token(self, offline_authenticator):
        now = int(time.time())
        token = FakeIdp.token(RSA_A, iat=now - 3600, nbf=now - 3600, exp=now - 60)
        error = await refused(offline_authenticator, token)
        assert error.detail == "token expired"

    async def test_refuses_a_token_that_is_not_yet_valid(self, offline_authenticator):
        now = int(time.time())
        token = FakeIdp.token(RSA_A, nbf=now + 600, exp=now + 900)
        error = await refused(offline_authenticator, token)
        assert error.detail == "token not yet valid"

    async def test_refuses_a_token_issued_in_the_future(self, offline_authenticator):
        now = int(time.time())
        token = FakeIdp.token(RSA_A, iat=now + 600, nbf=None, exp=now + 900)
        error = await refused(offline_authenticator, token)
        assert error.detail == "token not yet valid"

    async def test_refuses_a_token_whose_payload_was_tampered_with(self, offline_authenticator):
        header, _, signature = FakeIdp.token(RSA_A, roles=["analyst"]).split(".")
        evil = b64(json.dumps(claims(roles=["admin"])).encode())
        error = await refused(offline_authenticator, f"{header}.{evil}.{signature}")
        assert error.detail == "token signature is invalid"

    async def test_refuses_a_token_signed_under_an_unknown_kid(self, offline_authenticator):
        error = await refused(offline_authenticator, FakeIdp.token(ATTACKER))
        assert "unknown key" in error.detail

    async def test_refuses_a_token_signed_by_another_key_under_a_known_kid(
        self, offline_authenticator
    ):
        impostor = SigningKey("rsa-a", "RS256", ATTACKER.private)
        error = await refused(offline_authenticator, FakeIdp.token(impostor))
        assert error.detail == "token signature is invalid"

    async def test_refuses_an_algorithm_other_than_the_one_pinned_for_the_key(
        self, offline_authenticator
    ):
        # ES256 claimed for an RSA key: pinned to RS256, refused before any signature check.
        token = jwt.encode(
            claims(), EC_C.private, algorithm="ES256", headers={"kid": "rsa-a", "typ": "JWT"}
        )
        error = await refused(offline_authenticator, token)
        assert "not allowed for this key" in error.detail

    @pytest.mark.parametrize("algorithm", ["RS512", "PS256", "HS512", "EdDSA"])
    async def test_refuses_algorithms_that_are_never_pinned(self, offline_authenticator, algorithm):
        token = forge({"alg": algorithm, "typ": "JWT", "kid": "rsa-a"}, claims(), b"sig")
        error = await refused(offline_authenticator, token)
        assert "is refused" in error.detail

    async def test_ignores_a_key_embedded_in_the_header(self, offline_authenticator):
        embedded = {"jwk": ATTACKER.jwk(), "jku": "https://evil.example.test/jwks"}
        error = await refused(offline_authenticator, FakeIdp.token(ATTACKER, header=embedded))
        assert "unknown key" in error.detail

    async def test_refuses_an_rs256_token_without_a_kid(self, offline_authenticator):
        token = jwt.encode(claims(), RSA_A.private, algorithm="RS256", headers={"typ": "JWT"})
        error = await refused(offline_authenticator, token)
        assert "kid" in error.detail

    @pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud"])
    async def test_refuses_a_token_without_a_required_claim(self, offline_authenticator, missing):
        error = await refused(offline_authenticator, FakeIdp.token(RSA_A, drop=[missing]))
        assert missing in error.detail

    async def test_refuses_a_token_with_an_empty_subject(self, offline_authenticator):
        await refused(offline_authenticator, FakeIdp.token(RSA_A, sub=""))

    async def test_refuses_a_token_with_an_unknown_critical_header(self, offline_authenticator):
        token = FakeIdp.token(RSA_A, header={"crit": ["exp-ext"], "exp-ext": 1})
        await refused(offline_authenticator, token)

    async def test_refuses_an_internal_token_at_the_edge(self, offline_authenticator):
        principal = Principal(subject="svc", kind="service", scopes=frozenset({"*"}))
        await refused(offline_authenticator, mint_internal_token(principal, DEV_INTERNAL_SECRET))

    @pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 20_000, "ey.ey.ey"])
    async def test_refuses_malformed_tokens(self, verifier, token):
        with pytest.raises(Unauthorized):
            await verifier.verify(token)


class TestJwksCache:
    async def test_fetches_the_jwks_once_for_many_tokens(self, verifier, idp):
        for _ in range(20):
            await verifier.verify(FakeIdp.token(RSA_A))
            await verifier.verify(FakeIdp.token(EC_C))
        assert idp.fetches == 1

    async def test_fetches_again_after_the_cache_time(self, verifier, idp, clock):
        await verifier.verify(FakeIdp.token(RSA_A))
        clock.advance(3599)
        await verifier.verify(FakeIdp.token(RSA_A))
        assert idp.fetches == 1
        clock.advance(2)
        await verifier.verify(FakeIdp.token(RSA_A))
        assert idp.fetches == 2

    async def test_honours_a_shorter_cache_control_max_age(self, verifier, idp, clock):
        idp.cache_control = "public, max-age=120"
        await verifier.verify(FakeIdp.token(RSA_A))
        clock.advance(121)
        await verifier.verify(FakeIdp.token(RSA_A))
        assert idp.fetches == 2

    async def test_an_unknown_kid_refreshes_at_most_once_per_cooldown(self, verifier, idp, clock):
        await verifier.verify(FakeIdp.token(RSA_A))
        for _ in range(10):
            with pytest.raises(Unauthorized, match="unknown key"):
                await verifier.verify(FakeIdp.token(ATTACKER))
        assert idp.fetches == 2  # the first look-up, one refresh for the unknown kid
        clock.advance(29)
        with pytest.raises(Unauthorized):
            await verifier.verify(FakeIdp.token(ATTACKER))
        assert idp.fetches == 2
        clock.advance(2)
        with pytest.raises(Unauthorized):
            await verifier.verify(FakeIdp.token(ATTACKER))
        assert idp.fetches == 3

    async def test_random_kids_cannot_make_us_hammer_the_idp(self, verifier, idp, clock):
        await verifier.verify(FakeIdp.token(RSA_A))
        for i in range(100):
            kid = f"random-{i}"
            spoof = SigningKey(kid, "RS256", ATTACKER.private)
            with pytest.raises(Unauthorized):
                await verifier.verify(FakeIdp.token(spoof))
            clock.advance(0.1)  # 100 kids in 10 s
        # forced refreshes are at least 2 s apart: at most 5 in 10 s, plus the first fetch
        assert idp.fetches <= 6

    async def test_a_key_rollover_mid_run_causes_no_401s(self, verifier, idp, clock):
        idp.publish(RSA_A)
        failures: list[str] = []

        async def use(key, count=10):
            for _ in range(count):
                try:
                    await verifier.verify(FakeIdp.token(key))
                except Unauthorized as exc:
                    failures.append(f"{key.kid}: {exc.detail}")
                clock.advance(1)

        await use(RSA_A)
        assert idp.fetches == 1

        idp.publish(RSA_A, RSA_B)  # the IdP announces B; we still hold [A]
        await use(RSA_A)
        assert idp.fetches == 1

        # The IdP switches to signing with B: many requests at once with the new kid.
        tokens_a = [FakeIdp.token(RSA_A) for _ in range(5)]  # issued before the switch
        results = await asyncio.gather(
            *(verifier.verify(FakeIdp.token(RSA_B)) for _ in range(50)),
            *(verifier.verify(t) for t in tokens_a),
            return_exceptions=True,
        )
        failures += [repr(r) for r in results if isinstance(r, BaseException)]
        assert idp.fetches == 2  # one refresh, shared by all 50 requests
        await use(RSA_B)
        await use(RSA_A, count=3)  # tokens from before the switch still verify

        idp.publish(RSA_B)  # A retired at the IdP
        clock.advance(3600)
        await use(RSA_B)
        assert idp.fetches == 3
        assert failures == []
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(FakeIdp.token(RSA_A))

    async def test_keeps_the_last_keys_when_the_idp_is_down(self, verifier, idp, clock):
        await verifier.verify(FakeIdp.token(RSA_A))
        idp.down = True
        clock.advance(3601)
        await verifier.verify(FakeIdp.token(RSA_A))
        fetches = idp.fetches
        await verifier.verify(FakeIdp.token(RSA_A))
        assert idp.fetches == fetches  # no retry on every request
        idp.down = False
        clock.advance(3)
        await verifier.verify(FakeIdp.token(RSA_A))
        assert idp.fetches == fetches + 1

    async def test_answers_503_when_the_idp_was_never_reachable(self, verifier, idp):
        idp.down = True
        with pytest.raises(ServiceUnavailable, match="unavailable") as caught:
            await verifier.verify(FakeIdp.token(RSA_A))
        assert caught.value.status == 503

    async def test_never_uses_symmetric_or_private_keys_from_the_jwks(self, verifier, idp, cache):
        secret = b"s" * 32
        idp.extra_jwks = [
            {"kty": "oct", "kid": "hs", "k": b64(secret), "alg": "HS256"},
            {**ATTACKER.jwk(), "kid": "enc", "use": "enc"},
            {**RSA_B.jwk(), "alg": "RS512"},
        ]
        await verifier.verify(FakeIdp.token(RSA_A))
        assert cache.kids == {"rsa-a", "ec-c"}
        token = hs256_with(secret, {"alg": "HS256", "typ": "JWT", "kid": "hs"}, claims())
        with pytest.raises(Unauthorized):
            await verifier.verify(token)


async def test_an_http_client_error_is_not_a_crash(clock):
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as http:
        cache = JwksCache(http, JWKS_URL, clock=clock)
        await cache.refresh()  # logged, not raised: the gateway still starts
        assert cache.kids == frozenset()
