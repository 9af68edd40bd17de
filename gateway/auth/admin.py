"""Admin endpoints for API keys: create (the secret is shown once), list, read, revoke."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response, status

from gateway.auth import api_keys as service
from gateway.auth.authenticator import Authenticator
from gateway.auth.dependencies import ApiKeyDep, GatewayPrincipalDep, require_gateway_scopes
from gateway.auth.repository import ApiKeyRepository
from gateway.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage

__all__ = ["router"]

#: Every endpoint needs the ``admin`` scope. A router dependency runs before the endpoint's
#: own, so a caller without it learns nothing (not even whether a key id exists).
router = APIRouter(
    prefix="/api/v1/admin/api-keys",
    tags=["admin"],
    dependencies=[Depends(require_gateway_scopes("admin"))],
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    response_description="The new key, with its secret (shown only in this response).",
    responses=problem_responses(401, 403),
)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, admin: GatewayPrincipalDep, response: Response
) -> ApiKeyCreated:
    """Create an API key for a partner system or a script. It acts as `role`, limited to
    `scopes` (a subset of the role's scopes; all of them when omitted), until `expires_at`.

    **The `key` field of this response is the only time the full key is shown** — Rapport
    stores only a hash of it. Hand it to the partner over a secure channel. Partners send it
    as `X-API-Key: rpk_…` or `Authorization: Bearer rpk_…`."""
    api_key, full_key = await service.create_api_key(session, body, created_by=admin.subject)
    response.headers["Location"] = f"{router.prefix}/{api_key.id}"
    response.headers["Cache-Control"] = "no-store"
    read = ApiKeyRead.model_validate(api_key)
    return ApiKeyCreated(**read.model_dump(exclude={"prefix", "status"}), key=full_key)


@router.get(
    "",
    summary="List API keys",
    responses=problem_responses(401, 403),
)
async def list_api_keys(session: SessionDep, page: CursorDep) -> CursorPage[ApiKeyRead]:
    """Every API key — active, expired and revoked (see `status`) — oldest first, one page
    at a time. Secrets are never listed."""
    items, next_cursor = await ApiKeyRepository(session).list(page)
    return CursorPage(items=[ApiKeyRead.model_validate(k) for k in items], next_cursor=next_cursor)


@router.get(
    "/{api_key_id}",
    summary="Get an API key",
    responses=problem_responses(401, 403, 404),
)
async def get_api_key(api_key: ApiKeyDep) -> ApiKeyRead:
    """One API key by id, without its secret: its role, scopes, expiry, last use (to within
    a minute) and whether it was revoked."""
    return ApiKeyRead.model_validate(api_key)


@router.delete(
    "/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=problem_responses(401, 403, 404),
)
async def revoke_api_key(
    api_key: ApiKeyDep,
    session: SessionDep,
    admin: GatewayPrincipalDep,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    """Revoke a key for good. Requests with it are refused within 30 seconds on every
    gateway instance (at once on this one). Revoking a revoked key is a no-op, so retrying
    is safe; the first revocation's time and author are kept."""
    await service.revoke_api_key(session, api_key, revoked_by=admin.subject)
    authenticator = getattr(getattr(request.app.state, "gateway", None), "authenticator", None)
    if isinstance(authenticator, Authenticator):
        # Now, and again once the revocation is committed (background tasks run after the
        # response, which is sent after the commit): a request racing the commit may have
        # cached the key as still active in between.
        authenticator.forget_api_key(api_key.key_id)
        background.add_task(authenticator.forget_api_key, api_key.key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
