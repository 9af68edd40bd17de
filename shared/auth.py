"""Internal tokens: how a service knows who is calling and what they may do.

The gateway authenticates the caller (JWT, API key), then forwards the request with a
short-lived internal token (HS256 JWT, ``aud=rapport-internal``) naming the principal and its
scopes. Every service verifies that token itself, so a service reached directly, without it,
refuses with 401; a valid token lacking a scope gets 403.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from shared.errors import Forbidden, Unauthorized

__all__ = [
    "INTERNAL_AUDIENCE",
    "INTERNAL_ISSUER",
    "Principal",
    "PrincipalDep",
    "get_principal",
    "mint_internal_token",
    "require_scopes",
    "verify_internal_token",
]

INTERNAL_ISSUER = "rapport-gateway"
INTERNAL_AUDIENCE = "rapport-internal"
_ALGORITHM = "HS256"

_bearer = HTTPBearer(auto_error=False, description="Internal token minted by the gateway.")


class Principal(BaseModel):
    """Who is calling: a user, a partner's API key, or a Rapport service."""

    subject: str
    kind: Literal["user", "api_key", "service"] = "user"
    scopes: frozenset[str] = Field(default_factory=frozenset)
    roles: tuple[str, ...] = ()
    name: str | None = None
    #: Data scope: which customers this principal may see — its own (``owner_id`` equals
    #: ``subject``), its team's (``team_id`` equals ``team``) or all. Services apply it in
    #: their queries.
    scope_mode: Literal["own", "team", "all"] = "all"
    team: str | None = None

    def has(self, scope: str) -> bool:
        """``orders:write`` is granted by ``orders:write``, ``orders:*`` or ``*``."""
        if scope in self.scopes or "*" in self.scopes:
            return True
        resource = scope.split(":", 1)[0]
        return f"{resource}:*" in self.scopes


def mint_internal_token(principal: Principal, secret: str, *, ttl_s: int = 120) -> str:
    now = int(time.time())
    claims = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "sub": principal.subject,
        "kind": principal.kind,
        "scope": " ".join(sorted(principal.scopes)),
        "roles": list(principal.roles),
        "name": principal.name,
        "scope_mode": principal.scope_mode,
        "team": principal.team,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM, headers={"typ": "rapport-internal+jwt"})


def verify_internal_token(token: str, secret: str) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "rapport-internal+jwt":
            raise Unauthorized("not an internal token")
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=INTERNAL_AUDIENCE,
            issuer=INTERNAL_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("internal token expired") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid internal token: {exc}") from None
    return Principal(
        subject=claims["sub"],
        kind=claims.get("kind", "user"),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        roles=tuple(claims.get("roles") or ()),
        name=claims.get("name"),
        scope_mode=claims.get("scope_mode", "all"),
        team=claims.get("team"),
    )


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing bearer token; call Rapport through the gateway")
    secret: str = request.app.state.settings.internal_token_secret
    principal = verify_internal_token(credentials.credentials, secret)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_scopes(*scopes: str) -> Callable[..., object]:
    """A dependency that answers 403 unless the caller holds every one of ``scopes``."""

    async def check(principal: PrincipalDep) -> Principal:
        missing = [s for s in scopes if not principal.has(s)]
        if missing:
            raise Forbidden(f"missing scope(s): {', '.join(missing)}", missing_scopes=missing)
        return principal

    check.__name__ = f"require_{'_'.join(s.replace(':', '_') for s in scopes)}"
    return check
