from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from gateway.state import GatewayState
from gateway.webhooks import service
from gateway.webhooks.dependencies import SourceCacheDep
from gateway.webhooks.schemas import SOURCE_NAME, Accepted
from shared.errors import problem_responses

router = APIRouter(tags=["webhooks"])


# The documented contract of the front door. In a running gateway the pure-ASGI
# WebhookFrontDoor (gateway.webhooks.frontdoor) serves these requests with the same
# service.receive; this route serves what it declines, and all of them with
# GATEWAY_WEBHOOK_FAST_PATH=false.
@router.post(
    "/webhooks/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Receive a partner webhook",
    responses={
        200: {"model": Accepted, "description": "A repeated webhook-id: accepted and ignored"},
        **problem_responses(400, 401, 404, 413, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "Any payload; it is stored and forwarded byte for byte.",
        }
    },
)
async def receive_webhook(
    source: Annotated[str, Path(pattern=SOURCE_NAME)],
    request: Request,
    response: Response,
    cache: SourceCacheDep,
) -> Accepted:
    """The front door for partner systems (shops, e-mail, chat and call platforms).

    Sign each request with the source's secret using the
    [Standard Webhooks](https://www.standardwebhooks.com/) scheme: headers `webhook-id`
    (unique per message, reused on retries), `webhook-timestamp` (Unix seconds, within five
    minutes of now) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
    "{id}.{timestamp}.{body}">`; several space-separated signatures are allowed during a
    secret rotation).

    `202` means the raw body is stored durably and queued for the services; a retry of the
    same `webhook-id` answers `200` with `status: duplicate` and changes nothing. `503` (with
    `Retry-After`) means it could not be stored just now: send it again, same `webhook-id`.
    """
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    gateway: GatewayState = request.app.state.gateway  # there: the cache dependency checked
    outcome, receipt_id = await service.receive(
        gateway.receipts,
        gateway.database,
        cache,
        source=source,
        headers=headers,
        body=body,
        tolerance_s=gateway.settings.webhook_tolerance_s,
    )
    if outcome == "duplicate":
        response.status_code = status.HTTP_200_OK
    return Accepted(status=outcome, receipt_id=receipt_id)


#: The route object, for the pure-ASGI fast path (:mod:`gateway.webhooks.frontdoor`) to put
#: in the scope as routing would.
WEBHOOK_ROUTE = next(r for r in router.routes if getattr(r, "path", None) == "/webhooks/{source}")
