"""The edge: what happens to every ``/api/v1`` request before a service sees it.

Order, for each request (CORS preflights never get here: the CORS middleware outside answers
them, and the shared request-context middleware outside that has set the request id)::

    /api/v1/… ── authenticate ── rate-limit ──┬─ route table → service: proxy (gateway.proxy)
                   401 problem    429 problem  └─ /admin, unknown → the gateway's FastAPI routes

Everything else (``/webhooks/…`` with its own signature check, ``/health``, ``/docs``,
``/openapi.json``, ``/asyncapi.json``) passes through untouched.

Why a pure ASGI middleware and not FastAPI routes or ``BaseHTTPMiddleware``: the proxied
hot path should cost a header scan, two dict look-ups and the upstream call — no request
object, no routing, no dependency resolution, no response model, no extra task per request.

**Credential cache.** Verifying a JWT's signature on every request is the most expensive
thing the edge could do, and its answer cannot change before the token expires (JWTs are not
revocable). :class:`Credentials` keeps the verified :class:`~shared.auth.Principal` by the
SHA-256 of the ``Authorization`` value (never the token itself) for at most
:data:`CREDENTIAL_TTL_S`, and never past the token's own ``exp``. API keys are *not* cached
here: the Authenticator caches them itself and checks their expiry and this replica's
revocations on every request, which a second cache in front would defeat. Failures are
never cached.

**Internal tokens.** Minting the HS256 internal token costs ~20 µs of CPU, so each
principal's token is reused until half its TTL has passed: a service always receives a
token with at least ``internal_token_ttl_s / 2`` left.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.proxy import HOP_BY_HOP, send_problem
from gateway.ratelimit import Decision, Policy, RateLimiter
from gateway.routes import PUBLIC_PREFIX, Route
from shared.auth import Principal, mint_internal_token
from shared.errors import RapportError

if TYPE_CHECKING:
    from gateway.state import StateSlot

__all__ = ["CREDENTIAL_TTL_S", "Authenticates", "Credentials", "EdgeMiddleware", "Identity"]

#: Longest time a verified credential is trusted without asking the authenticator again.
CREDENTIAL_TTL_S = 30.0
_MAX_CREDENTIALS = 50_000
_MAX_IDENTITIES = 50_000

_PREFIX = PUBLIC_PREFIX.encode()
_PREFIX_SLASH = PUBLIC_PREFIX + "/"
#: Request fields never forwarded as they came: hop-by-hop ones, the credentials (replaced
#: by the internal token), and those the edge sets itself.
_NOT_FORWARDED = HOP_BY_HOP | {
    b"host",
    b"authorization",
    b"x-api-key",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-prefix",
    b"expect",
}


class Authenticates(Protocol):
    """What the edge needs of ``gateway.auth``'s Authenticator."""

    async def authenticate(self, headers: Headers) -> Principal: ...


@dataclass(slots=True)
class Identity:
    """A verified principal with what the hot path needs precomputed."""

    principal: Principal
    policy: Policy
    #: Rate-limit bucket: per principal, whatever credential it presents.
    limit_key: str
    #: ``Bearer <internal token>``; re-minted once ``refresh_at`` has passed.
    bearer: str = ""
    refresh_at: float = float("-inf")


def _fingerprint(principal: Principal) -> tuple[object, ...]:
    return (
        principal.kind,
        principal.subject,
        tuple(sorted(principal.scopes)),
        principal.roles,
        principal.name,
        principal.scope_mode,
        principal.team,
    )


def _jwt_expiry(authorization: bytes | None) -> float | None:
    """The ``exp`` of a bearer JWT, read *after* the authenticator verified it."""
    if authorization is None or authorization[:7].lower() != b"bearer ":
        return None
    parts = authorization[7:].strip().split(b".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + b"=" * (-len(parts[1]) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
    except (binascii.Error, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, int | float) else None


class Credentials:
    """Verified credentials (by SHA-256) → :class:`Identity`, and internal tokens."""

    def __init__(
        self,
        authenticator: Authenticates,
        limiter: RateLimiter,
        *,
        internal_secret: str,
        internal_ttl_s: int,
        ttl_s: float = CREDENTIAL_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.authenticator = authenticator
        self._limiter = limiter
        self._secret = internal_secret
        self._internal_ttl_s = internal_ttl_s
        self.ttl_s = ttl_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: dict[bytes, tuple[float, Identity]] = {}
        self._identities: dict[tuple[object, ...], Identity] = {}

    @staticmethod
    def key(authorization: bytes | None, api_key: bytes | None) -> bytes | None:
        """The cache key of a bearer credential; ``None`` when nothing may be cached."""
        if authorization is None or api_key is not None:
            return None  # both headers: the Authenticator refuses that, every time
        return hashlib.sha256(authorization).digest()

    def cached(self, key: bytes) -> Identity | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._cache[key]
            return None
        return entry[1]

    async def authenticate(
        self, scope: Scope, key: bytes | None, authorization: bytes | None
    ) -> Identity:
        """Ask the authenticator (raises :class:`~shared.errors.Unauthorized`), remember."""
        principal = await self.authenticator.authenticate(Headers(scope=scope))
        identity = self._identity(principal)
        # Only a JWT (it has an ``exp``) is cached; an API key (no dots) never is.
        exp = _jwt_expiry(authorization) if key is not None else None
        if key is not None and exp is not None:
            now = self._clock()
            lifetime = min(self.ttl_s, exp - self._wall_clock())
            if lifetime > 0:
                if len(self._cache) >= _MAX_CREDENTIALS:
                    self._evict(now)
                self._cache[key] = (now + lifetime, identity)
        return identity

    def _identity(self, principal: Principal) -> Identity:
        fingerprint = _fingerprint(principal)
        identity = self._identities.get(fingerprint)
        if identity is None:
            if len(self._identities) >= _MAX_IDENTITIES:
                self._identities.clear()  # rare: tokens are simply minted again
            identity = Identity(
                principal=principal,
                policy=self._limiter.policy_for(principal.roles),
                limit_key=f"{principal.kind}:{principal.subject}",
            )
            self._identities[fingerprint] = identity
        return identity

    def _evict(self, now: float) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        while len(self._cache) >= _MAX_CREDENTIALS:
            del self._cache[next(iter(self._cache))]  # oldest first

    def bearer(self, identity: Identity) -> str:
        """``Bearer <internal token>`` for ``identity``, minted at most every TTL / 2."""
        now = self._clock()
        if now >= identity.refresh_at:
            token = mint_internal_token(
                identity.principal, self._secret, ttl_s=self._internal_ttl_s
            )
            identity.bearer = f"Bearer {token}"
            identity.refresh_at = now + self._internal_ttl_s / 2
        return identity.bearer

    def forget_all(self) -> None:
        """Trust no cached credential any more."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    if not extra:
        return send

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return send_with_headers


async def _too_many(
    scope: Scope, receive: Receive, send: Send, decision: Decision, policy: Policy, whose: str = ""
) -> None:
    await send_problem(
        scope,
        receive,
        send,
        429,
        "too-many-requests",
        f"more than {policy.quota} requests per minute{whose}",
        headers=decision.as_dict(),
    )


def _unsafe(path: str) -> bool:
    """Dot segments are not normalised anywhere downstream: refuse them outright."""
    return "/." in path and any(s in (".", "..") for s in path.split("/"))


class EdgeMiddleware:
    """Authenticate, rate-limit and route ``/api/v1`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, slot: StateSlot) -> None:
        self.app = app
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_PREFIX_SLASH):
            await self.app(scope, receive, send)
            return
        state = self.slot.state
        if state is None:
            await send_problem(
                scope,
                receive,
                send,
                503,
                "starting",
                "the gateway is starting",
                headers={"Retry-After": "1"},
            )
            return
        path: str = scope["path"][len(PUBLIC_PREFIX) :]
        if _unsafe(path):
            await send_problem(scope, receive, send, 400, "bad-request", "dot segments in the path")
            return

        # One pass over the headers: credentials out, the rest kept for the upstream.
        authorization: bytes | None = None
        api_key: bytes | None = None
        host: bytes | None = None
        forwarded_for: bytes | None = None
        connection: bytes | None = None
        chunked = False
        headers: list[tuple[str, str]] = []
        for name, value in scope["headers"]:
            if name not in _NOT_FORWARDED:
                headers.append((name.decode("latin-1"), value.decode("latin-1")))
            elif name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"host":
                host = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            elif name == b"connection":
                connection = value
            elif name == b"transfer-encoding":
                chunked = True

        route = state.routes.match(path)
        if route is not None and route.public:
            # Signed links mail clients follow (campaign tracking): no credentials, and none
            # forwarded — the service checks the link's own signature. Limited per client
            # address (the ``public`` quota), since there is no principal to limit.
            public_headers: list[tuple[bytes, bytes]] = []
            if state.limiter is not None:
                policy = state.limiter.policy_for(("public",))
                client = scope.get("client")
                decision = state.limiter.acquire(f"public:{client[0] if client else ''}", policy)
                if not decision.allowed:
                    await _too_many(scope, receive, send, decision, policy, " from this address")
                    return
                public_headers = decision.headers
            await self._forward(
                scope,
                receive,
                send,
                route,
                path,
                headers,
                None,
                public_headers,
                chunked,
                connection,
                forwarded_for,
                host,
            )
            return

        credentials = state.credentials
        key = Credentials.key(authorization, api_key)
        identity = credentials.cached(key) if key is not None else None
        if identity is None:
            try:
                identity = await credentials.authenticate(scope, key, authorization)
            except RapportError as exc:
                await send_problem(
                    scope,
                    receive,
                    send,
                    exc.status,
                    exc.slug,
                    exc.detail,
                    title=exc.title,
                    headers=exc.headers,
                    extensions=exc.extensions,
                )
                return
        state_dict: dict[str, object] = scope.setdefault("state", {})
        state_dict["principal"] = identity.principal

        rate_headers: list[tuple[bytes, bytes]] = []
        if state.limiter is not None:
            decision = state.limiter.acquire(identity.limit_key, identity.policy)
            if not decision.allowed:
                await _too_many(scope, receive, send, decision, identity.policy)
                return
            rate_headers = decision.headers

        if route is None or route.local:
            await self.app(scope, receive, _with_headers(send, rate_headers))
            return
        await self._forward(
            scope,
            receive,
            send,
            route,
            path,
            headers,
            credentials.bearer(identity),
            rate_headers,
            chunked,
            connection,
            forwarded_for,
            host,
        )

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        path: str,
        headers: list[tuple[str, str]],
        bearer: str | None,
        rate_headers: list[tuple[bytes, bytes]],
        chunked: bool,
        connection: bytes | None,
        forwarded_for: bytes | None,
        host: bytes | None,
    ) -> None:
        state = self.slot.state
        assert state is not None
        state_dict: dict[str, object] = scope.setdefault("state", {})
        # Proxy. The request id, internal token and X-Forwarded-* are the edge's own.
        if chunked:  # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
            headers = [h for h in headers if h[0] != "content-length"]
        if connection is not None:
            headers = _drop_connection_options(headers, connection)
        if bearer is not None:
            headers.append(("authorization", bearer))
        request_id = state_dict.get("request_id")
        if isinstance(request_id, str):
            headers.append(("x-request-id", request_id))
        client = scope.get("client")
        if client:
            peer = client[0]
            headers.append(
                (
                    "x-forwarded-for",
                    f"{forwarded_for.decode('latin-1')}, {peer}" if forwarded_for else peer,
                )
            )
        headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
        if host is not None:
            headers.append(("x-forwarded-host", host.decode("latin-1")))
        # what the service strips from paths it shows (a problem's ``instance``)
        headers.append(("x-forwarded-prefix", PUBLIC_PREFIX))
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        # (When the prefix itself was percent-encoded, forward the decoded path re-encoded.)
        raw_path = (
            raw_path[len(_PREFIX) :] if raw_path.startswith(_PREFIX) else quote(path).encode()
        )
        scope["route"] = route  # the metrics label (route template) of the shared middleware
        await state.proxy.forward(
            scope,
            receive,
            send,
            upstream=state.proxy.upstreams[route.upstream],
            raw_path=raw_path,
            headers=headers,
            extra_response_headers=rate_headers,
        )


def _drop_connection_options(
    headers: list[tuple[str, str]], connection: bytes
) -> list[tuple[str, str]]:
    """Fields named in ``Connection`` are hop-by-hop too (RFC 9110 §7.6.1)."""
    named = {t.strip().lower() for t in connection.decode("latin-1").split(",")}
    named -= {"close", "keep-alive", ""}
    return [h for h in headers if h[0] not in named] if named else headers
