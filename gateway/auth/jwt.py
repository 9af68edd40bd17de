"""Verifying external JWT bearer tokens (OAuth 2 / OIDC access tokens), per RFC 8725.

* The header is read without trusting it: it only selects a key. The algorithm is pinned
  by the key — RS256 or ES256 for a JWKS key (derived from its ``kty``/``crv``, and equal to
  its ``alg`` when the JWK states one), HS256 for the development secret — and a token whose
  ``alg`` differs is refused, so ``alg=none`` and "HS256 signed with the RSA public key" never
  reach a signature check. ``jku``/``x5u``/``jwk`` headers are never followed.
* HS256 is accepted only when ``dev_jwt_secret`` is set *and* the environment is development
  or test, and only from a token without ``kid`` (a ``kid`` always names a JWKS key).
* ``typ`` must be ``JWT`` or ``at+jwt`` (RFC 9068; ``application/`` prefix and case are
  ignored); ``exp``, ``iat``, ``sub``, ``iss`` and ``aud`` are required; ``iss``, ``aud``,
  ``exp``, ``nbf`` and ``iat`` are checked with a small leeway (30 s).

:class:`JwksCache` keeps the identity provider's keys:

* fetched with the ``httpx.AsyncClient`` it is given, kept for ``cache_s`` (or the
  response's shorter ``Cache-Control: max-age``, but at least 30 s);
* a token with an unknown ``kid`` triggers one refresh, so a key rollover causes no 401s.
  That refresh is rate-limited: a ``kid`` still unknown after a refresh is not looked up
  again for ``unknown_kid_cooldown_s`` (30 s), and forced refreshes are at least
  ``min_refresh_interval_s`` (2 s) apart whatever the ``kid`` — random ``kid`` values cannot
  make the gateway hammer the IdP;
* concurrent refreshes collapse into one fetch; when the IdP is unreachable the last good
  keys stay in use, and no fetch is tried for ``min_refresh_interval_s``; with no keys at
  all a token gets a 503 problem (the IdP's fault, not the caller's).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from gateway.auth.errors import header_safe, invalid_token
from gateway.auth.roles import data_scope_for_roles, narrow_scopes, scopes_for_roles
from gateway.config import Settings
from shared.auth import Principal
from shared.errors import ServiceUnavailable
from shared.settings import Environment

__all__ = [
    "ACCEPTED_TYPES",
    "JwksCache",
    "JwksKey",
    "JwtVerifier",
]

logger = logging.getLogger(__name__)

#: ``typ`` values accepted (lower case, without ``application/``).
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt"})
_JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
_DEV_ALGORITHM = "HS256"
_MAX_TOKEN_BYTES = 16_384
_MAX_JWKS_BYTES = 1_048_576
_MIN_TTL_S = 30.0
_MAX_REMEMBERED_MISSES = 4096
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JwksKey:
    """One verification key of the IdP, with the single algorithm it may be used with."""

    kid: str
    algorithm: str
    key: Any


def _parse_jwk(data: Mapping[str, Any]) -> JwksKey | None:
    """The key, pinned to its algorithm; ``None`` for keys we never verify with."""
    kid = data.get("kid")
    kty = data.get("kty")
    if not isinstance(kid, str) or not kid:
        return None
    if data.get("use", "sig") != "sig":
        return None
    key_ops = data.get("key_ops")
    if key_ops is not None and "verify" not in key_ops:
        return None
    if "d" in data:
        logger.error("the JWKS publishes a private key (kid %s); ignoring it", kid)
        return None
    if kty == "RSA":
        algorithm = "RS256"
    elif kty == "EC" and data.get("crv") == "P-256":
        algorithm = "ES256"
    else:
        return None  # oct (symmetric) keys especially: never from a public JWKS
    if data.get("alg", algorithm) != algorithm:
        return None
    try:
        parsed = jwt.PyJWK(dict(data), algorithm=algorithm)
    except jwt.PyJWTError as exc:
        logger.warning("ignoring JWKS key %s: %s", kid, exc)
        return None
    return JwksKey(kid=kid, algorithm=algorithm, key=parsed.key)


class JwksCache:
    """The IdP's signing keys, by ``kid`` (see the module docstring for the refresh rules)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        cache_s: float = 3600.0,
        unknown_kid_cooldown_s: float = 30.0,
        min_refresh_interval_s: float = 2.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.url = url
        self.cache_s = float(cache_s)
        self.unknown_kid_cooldown_s = unknown_kid_cooldown_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._keys: dict[str, JwksKey] = {}
        self._expires_at = float("-inf")
        self._last_forced = float("-inf")
        self._retry_after = float("-inf")
        self._generation = 0
        self._lock = asyncio.Lock()
        self._misses: dict[str, float] = {}

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def get(self, kid: str) -> JwksKey:
        """The key named ``kid``; raises :class:`Unauthorized` when the IdP has none."""
        if self._clock() >= self._expires_at:
            await self._refresh(self._generation, forced=False)
        key = self._keys.get(kid)
        if key is not None:
            return key
        missed_at = self._misses.get(kid)
        if missed_at is not None and self._clock() - missed_at < self.unknown_kid_cooldown_s:
            raise invalid_token("token signed with an unknown key (kid)")
        refreshed = await self._refresh(self._generation, forced=True)
        key = self._keys.get(kid)
        if key is None:
            if refreshed:  # the IdP was asked and does not know it either
                self._remember_miss(kid)
            raise invalid_token("token signed with an unknown key (kid)")
        self._misses.pop(kid, None)
        return key

    async def refresh(self) -> None:
        """Fetch the keys now (at startup); errors are logged, the old keys kept."""
        with contextlib.suppress(ServiceUnavailable):  # logged; the next token retries
            await self._refresh(self._generation, forced=False)

    def _remember_miss(self, kid: str) -> None:
        now = self._clock()
        if len(self._misses) >= _MAX_REMEMBERED_MISSES:
            self._misses = {
                k: t for k, t in self._misses.items() if now - t < self.unknown_kid_cooldown_s
            }
            while len(self._misses) >= _MAX_REMEMBERED_MISSES:
                del self._misses[next(iter(self._misses))]
        self._misses[kid] = now

    async def _refresh(self, seen_generation: int, *, forced: bool) -> bool:
        """Fetch the JWKS unless another caller just did, a forced refresh happened less than
        ``min_refresh_interval_s`` ago, or a fetch failed that recently. True when the keys
        now held were fetched after ``seen_generation``."""
        async with self._lock:
            if self._generation != seen_generation:
                return True  # somebody else fetched while we waited: use theirs
            now = self._clock()
            if now < self._retry_after or (
                forced and now - self._last_forced < self.min_refresh_interval_s
            ):
                if not self._keys:
                    raise ServiceUnavailable("the identity provider's keys are unavailable")
                return False
            if forced:
                self._last_forced = now
            try:
                keys, ttl = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("cannot fetch JWKS from %s: %s", self.url, exc)
                # Keep serving the last good keys; try again after a short pause.
                self._retry_after = now + self.min_refresh_interval_s
                if not self._keys:
                    raise ServiceUnavailable(
                        "the identity provider's keys are unavailable"
                    ) from None
                return False
            self._keys = keys
            self._expires_at = self._clock() + ttl
            self._generation += 1
            logger.info("JWKS refreshed: %d key(s), kids %s", len(keys), sorted(keys))
            return True

    async def _fetch(self) -> tuple[dict[str, JwksKey], float]:
        response = await self._http.get(
            self.url, headers={"Accept": "application/json"}, timeout=self.timeout_s
        )
        response.raise_for_status()
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        document = response.json()
        raw_keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw_keys, list):
            raise ValueError("JWKS document has no 'keys' list")
        keys: dict[str, JwksKey] = {}
        for raw in raw_keys:
            if isinstance(raw, dict) and (parsed := _parse_jwk(raw)) is not None:
                keys[parsed.kid] = parsed
        ttl = self.cache_s
        max_age = _MAX_AGE.search(response.headers.get("cache-control", ""))
        if max_age is not None:
            ttl = min(ttl, max(float(max_age.group(1)), _MIN_TTL_S))
        return keys, ttl


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, only to choose a key: ``jwt.decode`` then checks the whole token
    strictly. (Parsed here because PyJWT's strict parse costs ~25 µs, and it runs anyway.)"""
    if token.count(".") != 2:
        raise invalid_token("token is malformed")
    segment = token[: token.index(".")]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise invalid_token("token is malformed") from None
    if not isinstance(header, dict):
        raise invalid_token("token is malformed")
    return header


def _normalised_type(typ: object) -> str | None:
    if not isinstance(typ, str):
        return None
    typ = typ.lower()
    return typ.removeprefix("application/")


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """``claims[name]``; a dotted name (``realm_access.roles``) walks nested objects when no
    claim has that exact name (namespaced claims such as ``https://x.io/roles`` contain dots)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token is not meant for this API (aud)"),
    (jwt.InvalidIssuerError, "token issued by an untrusted issuer (iss)"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.DecodeError, "token is malformed"),
)


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the required '{exc.claim}' claim"
    for cls, detail in _ERRORS:
        if isinstance(exc, cls):
            return detail
    return f"invalid token: {exc}"


class JwtVerifier:
    """Turns a bearer JWT into a :class:`Principal`, or raises a 401 problem."""

    def __init__(
        self, settings: Settings, jwks: JwksCache | None, *, leeway_s: float = 30.0
    ) -> None:
        self.settings = settings
        self.jwks = jwks
        self.leeway_s = leeway_s
        self._dev_secret: str | None = None
        if settings.dev_jwt_secret and settings.environment in (
            Environment.DEVELOPMENT,
            Environment.TEST,
        ):
            self._dev_secret = settings.dev_jwt_secret
        self._options: jwt.types.Options = {
            "require": ["exp", "iat", "sub", "iss", "aud"],
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": True,
        }

    @property
    def accepts_dev_tokens(self) -> bool:
        return self._dev_secret is not None

    async def verify(self, token: str) -> Principal:
        if len(token) > _MAX_TOKEN_BYTES:
            raise invalid_token("token too large")
        header = _unverified_header(token)
        if _normalised_type(header.get("typ")) not in ACCEPTED_TYPES:
            raise invalid_token("token type (typ) must be JWT or at+jwt")
        algorithm = header.get("alg")
        kid = header.get("kid")
        key: Any
        if algorithm == _DEV_ALGORITHM:
            if self._dev_secret is None:
                raise invalid_token("HS256 tokens are accepted only in development")
            if kid is not None:
                raise invalid_token("token algorithm is not allowed for this key")
            key = self._dev_secret
        elif algorithm in _JWKS_ALGORITHMS:
            if self.jwks is None:
                raise invalid_token("no identity provider (JWKS) is configured")
            if not isinstance(kid, str) or not kid:
                raise invalid_token("token has no key id (kid)")
            jwk = await self.jwks.get(kid)
            if jwk.algorithm != algorithm:
                raise invalid_token("token algorithm is not allowed for this key")
            key = jwk.key
        else:
            raise invalid_token(f"token algorithm {header_safe(str(algorithm))!r} is refused")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.leeway_s,
                options=self._options,
            )
        except jwt.PyJWTError as exc:
            raise invalid_token(_describe(exc)) from None
        return self.principal(claims)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal named by verified ``claims``."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise invalid_token("token subject (sub) must be a non-empty string")
        roles = tuple(dict.fromkeys(_string_list(_claim(claims, self.settings.roles_claim))))
        scopes = scopes_for_roles(roles)
        if "scope" in claims:
            scopes = narrow_scopes(scopes, _string_list(claims["scope"]))
        team = claims.get("team")
        if team is not None and not isinstance(team, str):
            raise invalid_token("token claim 'team' must be a string")
        claimed_mode = claims.get("scope_mode")
        try:
            scope_mode = data_scope_for_roles(
                roles,
                claimed_mode=claimed_mode if claimed_mode is None else str(claimed_mode),
                team=team,
            )
        except ValueError as exc:
            raise invalid_token(f"token claim 'scope_mode' is invalid: {exc}") from None
        name = claims.get("name") or claims.get("preferred_username")
        return Principal(
            subject=subject,
            kind="user",
            scopes=scopes,
            roles=roles,
            name=name if isinstance(name, str) else None,
            scope_mode=scope_mode,
            team=team or None,
        )
