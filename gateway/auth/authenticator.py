"""The gateway's front door: who is calling, from the request headers.

Accepted credentials (header names lower-cased):

* ``authorization: Bearer <jwt>`` — an OAuth 2 / OIDC access token (see :mod:`.jwt`);
* ``authorization: Bearer rpk_…`` or ``x-api-key: rpk_…`` — an API key (see
  :mod:`.api_keys`). Sending both headers is refused as ambiguous.

Every failure is :class:`shared.errors.Unauthorized` (401 problem) with an RFC 6750
``WWW-Authenticate: Bearer …`` challenge (``error="invalid_token"``, or
``error="invalid_request"`` for a malformed header; no error code when nothing was sent).

Hot path: a JWT costs one signature check (no I/O; keys are cached). A verified API key is
cached in memory for ``api_key_cache_s`` (default 30 s), keyed by SHA-256 of the full key, so
a busy key costs one database query per 30 s instead of one per request. The bound this puts
on revocation: **a revoked key is refused by every gateway replica within
``api_key_cache_s``** — immediately by the replica that served the revocation (it drops its
cached entry), at the latest when the other replicas' entries expire. Expiry (``expires_at``)
is checked on every request, cached or not.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateway.auth.api_keys import (
    authenticate_api_key,
    looks_like_api_key,
    parse_api_key,
    principal_for_api_key,
)
from gateway.auth.errors import invalid_token
from gateway.auth.jwt import JwksCache, JwtVerifier
from gateway.config import Settings
from shared.auth import Principal
from shared.db import Database
from shared.errors import Unauthorized

__all__ = ["DEFAULT_API_KEY_CACHE_S", "Authenticator"]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY_CACHE_S = 30.0
_MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class _CachedKey:
    principal: Principal
    key_id: str
    expires_at: float  # wall-clock seconds: the key's own expiry (inf: never)
    cached_until: float  # wall-clock seconds: when this entry must be re-checked


class Authenticator:
    """Authenticates requests at the gateway. Build it in the lifespan; ``start`` / ``close``.

    ``http`` fetches the JWKS; when omitted (and a JWKS URL is configured) the authenticator
    opens and closes its own client. ``api_key_cache_s`` defaults to the settings'
    ``api_key_cache_s`` when they have one, else 30 s; ``clock`` (wall-clock seconds) is for
    tests.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        http: httpx.AsyncClient | None = None,
        *,
        api_key_cache_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.database = database
        if api_key_cache_s is None:
            api_key_cache_s = float(getattr(settings, "api_key_cache_s", DEFAULT_API_KEY_CACHE_S))
        self.api_key_cache_s = api_key_cache_s
        self._clock = clock
        self._own_http: httpx.AsyncClient | None = None
        self.jwks: JwksCache | None = None
        if settings.jwks_url:
            if http is None:
                http = self._own_http = httpx.AsyncClient(
                    timeout=httpx.Timeout(5.0), follow_redirects=False
                )
            self.jwks = JwksCache(http, settings.jwks_url, cache_s=settings.jwks_cache_s)
        self.verifier = JwtVerifier(settings, self.jwks)
        self._api_keys: dict[bytes, _CachedKey] = {}

    async def start(self) -> None:
        """Fetch the JWKS ahead of the first request (an unreachable IdP is logged, and
        retried on demand: the gateway still starts)."""
        if self.jwks is not None:
            try:
                await self.jwks.refresh()
            except Exception as exc:
                logger.warning("JWKS not available at startup: %s", exc)

    async def close(self) -> None:
        self._api_keys.clear()
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller named by ``headers`` (lower-cased names), or a 401 problem."""
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        if authorization is not None and api_key is not None:
            raise invalid_token(
                "send either Authorization or X-API-Key, not both", error="invalid_request"
            )
        if api_key is not None:
            return await self._api_key(api_key.strip())
        if authorization is None:
            raise Unauthorized(
                "authentication required: send 'Authorization: Bearer <token>' "
                "or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="rapport"'},
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise invalid_token(
                "the Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        if looks_like_api_key(credential):
            return await self._api_key(credential)
        return await self.verifier.verify(credential)

    def forget_api_key(self, key_id: str) -> None:
        """Drop the cached entries of ``key_id`` (after revoking it in this process)."""
        for digest in [d for d, e in self._api_keys.items() if e.key_id == key_id]:
            self._api_keys.pop(digest, None)

    async def _api_key(self, raw: str) -> Principal:
        parsed = parse_api_key(raw)  # format and checksum: no database needed
        digest = hashlib.sha256(raw.encode("ascii")).digest()
        now = self._clock()
        cached = self._api_keys.get(digest)
        if cached is not None:
            if now >= cached.expires_at:
                self._api_keys.pop(digest, None)
                raise invalid_token("API key expired")
            if now < cached.cached_until:
                return cached.principal
            self._api_keys.pop(digest, None)
        async with self.database.session() as session:
            api_key = await authenticate_api_key(
                session, parsed, now=datetime.fromtimestamp(now, UTC)
            )
        principal = principal_for_api_key(api_key)
        expires_at = api_key.expires_at.timestamp() if api_key.expires_at else float("inf")
        self._remember(
            digest, _CachedKey(principal, api_key.key_id, expires_at, now + self.api_key_cache_s)
        )
        return principal

    def _remember(self, digest: bytes, entry: _CachedKey) -> None:
        if self.api_key_cache_s <= 0:
            return
        if len(self._api_keys) >= _MAX_CACHED_KEYS:
            now = self._clock()
            self._api_keys = {d: e for d, e in self._api_keys.items() if e.cached_until > now}
            while len(self._api_keys) >= _MAX_CACHED_KEYS:
                del self._api_keys[next(iter(self._api_keys))]
        self._api_keys[digest] = entry
