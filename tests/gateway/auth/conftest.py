"""A fake identity provider (JWKS served through ``httpx.MockTransport``), signing keys, a
controllable clock, and gateway settings pointed at the fake IdP."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth import Authenticator
from gateway.config import Settings
from shared.db import Database
from shared.errors import Unauthorized

ISSUER = "https://idp.example.test/"
AUDIENCE = "rapport-api"
JWKS_URL = "https://idp.example.test/.well-known/jwks.json"
#: Nothing listens here: a test using this database proves it never touched one.
UNREACHABLE_DATABASE = "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"


class FakeClock:
    """A clock the test moves by hand (``time.monotonic`` / ``time.time`` stand-in)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        exporter = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        data: dict[str, Any] = json.loads(exporter.to_jwk(self.public))
        data.update(kid=self.kid, use="sig", alg=self.algorithm)
        return data


@functools.cache
def _rsa(name: str) -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _ec(name: str) -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", _rsa(kid))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", _ec(kid))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "roles": ["sales"],
        "team": "emea",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


class FakeIdp:
    """Publishes a JWKS and signs tokens; counts how often the JWKS is fetched."""

    def __init__(self, *published: SigningKey) -> None:
        self.published: list[SigningKey] = list(published)
        self.extra_jwks: list[dict[str, Any]] = []
        self.fetches = 0
        self.down = False
        self.cache_control: str | None = None

    def publish(self, *keys: SigningKey) -> None:
        self.published = list(keys)

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        document = {"keys": [k.jwk() for k in self.published] + self.extra_jwks}
        return httpx.Response(200, json=document, headers=headers)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    @staticmethod
    def token(
        key: SigningKey,
        *,
        header: dict[str, Any] | None = None,
        drop: Iterable[str] = (),
        **claim_overrides: Any,
    ) -> str:
        payload = claims(**claim_overrides)
        for name in drop:
            payload.pop(name, None)
        headers = {"kid": key.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(payload, key.private, algorithm=key.algorithm, headers=headers)


def jwt_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": UNREACHABLE_DATABASE,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwks_url": JWKS_URL,
        "roles_claim": "roles",
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass(frozen=True)
class Refusal:
    detail: str
    challenge: str


async def refusal(authenticator: Authenticator, headers: dict[str, str]) -> Refusal:
    """The 401 problem ``authenticator`` answers ``headers`` with."""
    with pytest.raises(Unauthorized) as caught:
        await authenticator.authenticate(headers)
    assert caught.value.status == 401
    return Refusal(caught.value.detail or "", caught.value.headers["WWW-Authenticate"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000.0)


@pytest.fixture
def idp() -> FakeIdp:
    return FakeIdp(rsa_key("rsa-a"), ec_key("ec-c"))


@pytest_asyncio.fixture(loop_scope="session")
async def offline_authenticator(idp: FakeIdp):
    """An Authenticator whose database is unreachable: JWTs and malformed keys only."""
    settings = jwt_settings()
    database = Database(settings.database_url, schema="gateway")
    async with idp.client() as http:
        authenticator = Authenticator(settings, database, http)
        await authenticator.start()
        try:
            yield authenticator
        finally:
            await authenticator.close()
            await database.dispose()
