"""``/api/v1/webhook-endpoints``: partners subscribe to Rapport's events."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from gateway.auth.dependencies import require_gateway_scopes
from gateway.models import OutboundEndpoint
from gateway.outbound import service
from gateway.outbound.runtime import Outbound
from gateway.outbound.schemas import (
    AttemptOutcome,
    AttemptRead,
    DeliveryRead,
    DeliveryStatus,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointUpdate,
    Replay,
    ReplayQueued,
    RotateSecret,
    SecretIssued,
)
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage, paginate

router = APIRouter(prefix="/api/v1/webhook-endpoints", tags=["webhooks: outbound"])

PrincipalDep = Annotated[Principal, Depends(require_gateway_scopes("webhooks:subscribe"))]


def _outbound(request: Request) -> Outbound:
    outbound: Outbound = request.app.state.gateway.outbound
    return outbound


async def _endpoint(endpoint_id: UUID, session: SessionDep, principal: PrincipalDep) -> Any:
    return await service.visible_endpoint(session, principal, endpoint_id)


EndpointDep = Annotated[OutboundEndpoint, Depends(_endpoint)]
_MESSAGE_ID_PATTERN = r"^msg_[0-9a-f]{32}$"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an endpoint to events",
    responses=problem_responses(401, 403, 422),
)
async def create_endpoint(
    body: EndpointCreate, session: SessionDep, principal: PrincipalDep, request: Request
) -> EndpointCreated:
    """Rapport will POST the chosen events to `url`, signed with the Standard Webhooks
    scheme. The response carries the `whsec_…` secret **once**. Private, loopback and
    link-local addresses are refused (`422`); subscribing to an event needs the scopes that
    reading its data does (`403`)."""
    outbound = _outbound(request)
    endpoint, secret = await service.create_endpoint(
        session, outbound.box, outbound.policy, principal, body
    )
    outbound.endpoints_changed()
    return EndpointCreated(
        **EndpointRead.model_validate(endpoint).model_dump(),
        secret=SecretIssued(secret=secret),
    )


@router.get("", summary="List webhook endpoints", responses=problem_responses(401, 403))
async def list_endpoints(
    session: SessionDep, principal: PrincipalDep, page: CursorDep
) -> CursorPage[EndpointRead]:
    """Your endpoints (all of them for admins), oldest first."""
    items: list[OutboundEndpoint]
    items, next_cursor = await paginate(
        session,
        service.endpoints_of(principal),
        keys=[OutboundEndpoint.created_at, OutboundEndpoint.id],
        key_of=lambda e: (e.created_at, e.id),
        params=page,
    )
    return CursorPage(
        items=[EndpointRead.model_validate(e) for e in items], next_cursor=next_cursor
    )


@router.get(
    "/{endpoint_id}", summary="Get a webhook endpoint", responses=problem_responses(401, 403, 404)
)
async def get_endpoint(endpoint: EndpointDep) -> EndpointRead:
    """Includes why it was disabled, if it was, and since when it has been failing."""
    return EndpointRead.model_validate(endpoint)


@router.patch(
    "/{endpoint_id}",
    summary="Change or re-enable a webhook endpoint",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_endpoint(
    endpoint: EndpointDep,
    patch: EndpointUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
) -> EndpointRead:
    """`{"enabled": true}` re-enables a disabled endpoint; its waiting deliveries resume."""
    outbound = _outbound(request)
    updated = await service.update_endpoint(session, outbound.policy, principal, endpoint, patch)
    outbound.endpoints_changed()
    outbound.wake()
    return EndpointRead.model_validate(updated)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
    responses=problem_responses(401, 403, 404),
)
async def delete_endpoint(endpoint: EndpointDep, session: SessionDep, request: Request) -> Response:
    """Stops deliveries at once; its queue and delivery log are deleted with it."""
    await session.delete(endpoint)
    _outbound(request).endpoints_changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/secrets",
    status_code=status.HTTP_201_CREATED,
    summary="Rotate an endpoint's signing secret",
    responses=problem_responses(401, 403, 404),
)
async def rotate_secret(
    endpoint: EndpointDep, body: RotateSecret, session: SessionDep, request: Request
) -> SecretIssued:
    """A new secret, shown once. Until `previous_secrets_expire_at` every message carries a
    signature by the old secrets too, so the receiver can switch without failing any."""
    secret, until = await service.rotate_secret(
        session, _outbound(request).box, endpoint, body.overlap_s
    )
    return SecretIssued(secret=secret, previous_secrets_expire_at=until)


@router.get(
    "/{endpoint_id}/attempts",
    summary="The delivery log of an endpoint",
    responses=problem_responses(401, 403, 404),
)
async def list_attempts(
    endpoint: EndpointDep,
    session: SessionDep,
    page: CursorDep,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    outcome: AttemptOutcome | None = None,
    message_id: Annotated[str | None, Query(max_length=40, pattern=_MESSAGE_ID_PATTERN)] = None,
) -> CursorPage[AttemptRead]:
    """Every attempt, newest first: status, latency, the start of the response."""
    items, next_cursor = await service.list_attempts(
        session, endpoint, page, event_type=event_type, outcome=outcome, message_id=message_id
    )
    return CursorPage(items=[AttemptRead.model_validate(a) for a in items], next_cursor=next_cursor)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="An endpoint's queue: each message's delivery state",
    responses=problem_responses(401, 403, 404),
)
async def list_deliveries(
    endpoint: EndpointDep,
    session: SessionDep,
    page: CursorDep,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
) -> CursorPage[DeliveryRead]:
    """Newest first. `pending` ones wait for their next attempt (`next_attempt_at`)."""
    items, next_cursor = await service.list_deliveries(
        session, endpoint, page, status=delivery_status
    )
    return CursorPage(
        items=[DeliveryRead.model_validate(d) for d in items], next_cursor=next_cursor
    )


@router.post(
    "/{endpoint_id}/messages/{message_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send one message again now",
    responses=problem_responses(401, 403, 404, 409),
)
async def retry_message(
    endpoint: EndpointDep,
    message_id: Annotated[str, Path(max_length=40, pattern=_MESSAGE_ID_PATTERN)],
    session: SessionDep,
    request: Request,
) -> DeliveryRead:
    """Puts a finished (or failed) delivery back in the queue, due at once."""
    delivery = await service.retry_message(session, endpoint, message_id)
    await session.commit()
    _outbound(request).wake()
    return DeliveryRead.model_validate(delivery)


@router.post(
    "/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send everything since a time again",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def replay(
    endpoint: EndpointDep, body: Replay, session: SessionDep, request: Request
) -> ReplayQueued:
    """Every message since `since` that the endpoint subscribes to is queued again, in
    order (same `webhook-id`s: a receiver that has one already can skip it)."""
    queued = await service.replay_since(session, endpoint, body.since)
    await session.commit()
    _outbound(request).wake()
    return ReplayQueued(queued=queued)
