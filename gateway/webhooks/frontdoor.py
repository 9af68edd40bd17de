"""``POST /webhooks/{source}`` served as pure ASGI, without FastAPI's per-request machinery.

Why: at the front door's rate (≥ 2,000 webhooks/s on two cores shared with PostgreSQL),
the CPU per request is the limit. Measured in-process, a webhook cost ~200 µs through the
FastAPI route and ~95 µs here: route matching through the included routers, dependency
solving and response-model serialisation cost more than verifying, building the event and
storing it (~65 µs, group commit included). As with the edge (:mod:`gateway.edge`), the hot
path gets a plain ASGI handler.

It is the same operation, not a second one: it calls the same :func:`service.receive`, and
renders errors with the app's own exception handlers, so answers are identical (the tests
run every front-door case both ways). The FastAPI route in :mod:`gateway.webhooks.endpoints`
stays the documented contract (OpenAPI) and serves whatever this declines: other methods
(405), a source name that does not match the documented pattern (422), a gateway not yet
started (503), and everything when ``GATEWAY_WEBHOOK_FAST_PATH=false``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.webhooks import service
from gateway.webhooks.endpoints import WEBHOOK_ROUTE
from gateway.webhooks.schemas import SOURCE_NAME

if TYPE_CHECKING:
    from gateway.state import StateSlot

__all__ = ["WebhookFrontDoor"]

_PREFIX = "/webhooks/"
_SOURCE = re.compile(SOURCE_NAME)
_JSON_HEADERS = [(b"content-type", b"application/json")]


class WebhookFrontDoor:
    """Serves ``POST /webhooks/{source}``; passes everything else on."""

    def __init__(self, app: ASGIApp, *, slot: StateSlot) -> None:
        self.app = app
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.slot.state
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(_PREFIX)
            or state is None
        ):
            await self.app(scope, receive, send)
            return
        source = scope["path"][len(_PREFIX) :]
        if not _SOURCE.fullmatch(source):
            await self.app(scope, receive, send)
            return
        # What routing would have set: the access log and metrics label by route template.
        scope["route"] = WEBHOOK_ROUTE
        scope["path_params"] = {"source": source}
        try:
            body = await _body(receive)
            if body is None:  # the client went away: nothing stored, nobody to answer
                return
            outcome, receipt_id = await service.receive(
                state.receipts,
                state.database,
                state.sources,
                source=source,
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                },
                body=body,
                tolerance_s=state.settings.webhook_tolerance_s,
            )
        except Exception as exc:
            handler = _handler(scope, exc)
            if handler is None:
                raise  # as through FastAPI: the server-error middleware answers 500
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        payload = b'{"status":"%s","receipt_id":"%s"}' % (
            outcome.encode(),
            str(receipt_id).encode(),
        )
        await send(
            {
                "type": "http.response.start",
                "status": 202 if outcome == "accepted" else 200,
                "headers": [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _handler(scope: Scope, exc: Exception) -> Any:
    """The app's handler for ``exc`` — those FastAPI's exception middleware would use (the
    catch-all ``Exception`` one belongs to the server-error middleware outside)."""
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
