"""Development tokens: ``rapport token --role sales`` to try the API locally.

A dev token is an HS256 JWT signed with ``settings.dev_jwt_secret`` that the gateway's
:class:`~gateway.auth.jwt.JwtVerifier` accepts exactly like an IdP's token (same ``iss``,
``aud``, ``typ=at+jwt``, roles in ``settings.roles_claim``) — but only in development and
test. Minting is refused in production, and without a dev secret.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from gateway.auth.roles import ROLES, SCOPE_MODES
from gateway.config import Settings
from shared.settings import Environment

__all__ = ["DevTokenRefused", "mint_dev_token"]


class DevTokenRefused(RuntimeError):
    """Dev tokens cannot be minted with these settings (production, or no dev secret)."""


def _set_claim(claims: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name``; a dotted name (``realm_access.roles``) builds nested objects, as the
    verifier reads them."""
    if "." in name and not name.startswith(("http://", "https://")):
        *parents, leaf = name.split(".")
        node = claims
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    else:
        claims[name] = value


def mint_dev_token(
    settings: Settings,
    *,
    role: str,
    subject: str = "dev-user",
    team: str | None = None,
    scope_mode: str | None = None,
    ttl_s: int = 3600,
) -> str:
    """An access token for ``subject`` acting as ``role``, valid for ``ttl_s`` seconds.

    ``team`` / ``scope_mode`` become the claims of the same name (narrowing the role's data
    scope). Raises :class:`DevTokenRefused` in production or without ``dev_jwt_secret``, and
    :class:`ValueError` for an unknown role or scope mode."""
    if settings.environment == Environment.PRODUCTION:
        raise DevTokenRefused("refusing to mint dev tokens in production")
    if not settings.dev_jwt_secret:
        raise DevTokenRefused("GATEWAY_DEV_JWT_SECRET is empty: dev tokens are disabled")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    if scope_mode is not None and scope_mode not in SCOPE_MODES:
        raise ValueError(f"unknown scope mode {scope_mode!r}; known: {', '.join(SCOPE_MODES)}")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "name": subject,
    }
    _set_claim(claims, settings.roles_claim, [role])
    if team is not None:
        claims["team"] = team
    if scope_mode is not None:
        claims["scope_mode"] = scope_mode
    return jwt.encode(claims, settings.dev_jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"})
