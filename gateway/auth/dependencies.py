"""FastAPI dependencies of the gateway's own endpoints: who is calling, and may they."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth.authenticator import Authenticator
from gateway.auth.repository import ApiKeyRepository
from gateway.models import ApiKey
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound

__all__ = [
    "ApiKeyDep",
    "GatewayPrincipalDep",
    "get_api_key_or_404",
    "get_gateway_principal",
    "require_gateway_scopes",
]

# Declared for the OpenAPI document only (Swagger's "Authorize" button); the Authenticator
# reads the headers itself.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An OAuth 2 / OIDC access token (JWT), or an API key (`rpk_…`).",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`rpk_…`), for partners and scripts.",
)


def _authenticator(request: Request) -> Authenticator:
    gateway = getattr(request.app.state, "gateway", None)
    authenticator = getattr(gateway, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        raise RuntimeError("app.state.gateway.authenticator is not set up")
    return authenticator


async def get_gateway_principal(
    request: Request,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The caller: the principal the edge already authenticated (``request.state.principal``),
    else authenticated here from the request's headers. 401 problem when it can't be."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    principal = await _authenticator(request).authenticate(request.headers)
    request.state.principal = principal
    return principal


GatewayPrincipalDep = Annotated[Principal, Depends(get_gateway_principal)]


def require_gateway_scopes(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency answering 403 (``missing_scopes``) unless the caller holds every one of
    ``scopes``; it returns the principal."""

    async def check(principal: GatewayPrincipalDep) -> Principal:
        missing = [s for s in scopes if not principal.has(s)]
        if missing:
            raise Forbidden(f"missing scope(s): {', '.join(missing)}", missing_scopes=missing)
        return principal

    check.__name__ = f"require_{'_'.join(s.replace(':', '_') for s in scopes)}"
    return check


async def get_api_key_or_404(api_key_id: UUID, session: SessionDep) -> ApiKey:
    api_key = await ApiKeyRepository(session).get(api_key_id)
    if api_key is None:
        raise NotFound(f"API key {api_key_id} does not exist")
    return api_key


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key_or_404)]
