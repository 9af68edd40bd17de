"""One pure-ASGI middleware for what every request needs: a request id (taken from
``X-Request-ID`` or generated) echoed back and put in the logs, the W3C trace id (when tracing
is on, that of FastAPI's SERVER span, which proxied requests continue: :mod:`shared.tracing`), the body size limit (413 problem, also for chunked bodies without a Content-Length), and the latency
histogram labelled by route template."""

from __future__ import annotations

import logging
import re
import time
import uuid

from opentelemetry import trace
from opentelemetry.trace import Span
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics, tracing
from shared.errors import PayloadTooLarge, problem_response
from shared.logging import request_id_var, trace_id_var

__all__ = ["RequestContextMiddleware"]

logger = logging.getLogger("rapport.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        max_body_bytes: int,
        max_upload_bytes: int | None = None,
        upload_prefixes: tuple[str, ...] = (),
    ) -> None:
        """``max_body_bytes`` bounds every request body, except under ``upload_prefixes``
        (file uploads such as imports, streamed to disk by their endpoints), where
        ``max_upload_bytes`` does."""
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        self.upload_prefixes = upload_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        span: Span | None = None
        if tracing.enabled():
            span = self._join_span(scope, request_id)
            trace_id = tracing.trace_id_of(span)
        else:
            parent = _TRACEPARENT.match(headers.get("traceparent", ""))
            trace_id = parent.group(1) if parent else None
        rid_token = request_id_var.set(request_id)
        tid_token = trace_id_var.set(trace_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if span is not None:  # before FastAPI ends it with the response
                    self._name_span(span, scope)
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        limit = (
            self.max_upload_bytes
            if self.upload_prefixes and scope["path"].startswith(self.upload_prefixes)
            else self.max_body_bytes
        )
        try:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._too_large(scope, receive, send_with_id, limit)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        # An HTTPException, because FastAPI turns any other error raised
                        # while reading the body into a 400.
                        raise HTTPException(413, f"the request body exceeds {limit} bytes")
                return message

            await self.app(scope, limited_receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_REQUESTS.labels(
                self.service, scope["method"], template, str(status)
            ).observe(elapsed)
            # Successful requests are counted and timed by the histogram above; logging each
            # one costs ~15 % of a proxy hop's CPU, so they log at DEBUG and failures at INFO.
            logger.log(
                logging.INFO if status >= 400 else logging.DEBUG,
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
            )
            request_id_var.reset(rid_token)
            trace_id_var.reset(tid_token)

    @staticmethod
    def _name_span(span: Span, scope: Scope) -> None:
        # Routes the gateway's edge proxies are not FastAPI routes: name the span after them.
        template = getattr(scope.get("route"), "path", None)
        if template and span.is_recording():
            span.update_name(f"{scope['method']} {template}")
            span.set_attribute("http.route", template)

    def _join_span(self, scope: Scope, request_id: str) -> Span:
        """The request's SERVER span (FastAPI's native telemetry opens it, around this
        middleware, once a tracer provider is installed). The request's ``traceparent`` is
        rewritten to that span, so a proxied request continues the trace from here."""
        span = trace.get_current_span()
        span.set_attribute("rapport.part", self.service)
        span.set_attribute("rapport.request_id", request_id)
        forwarded = tracing.inject()
        scope["headers"] = [
            *((k, v) for k, v in scope["headers"] if k not in (b"traceparent", b"tracestate")),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in forwarded.items()),
        ]
        return span

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            PayloadTooLarge.slug,
            f"the request body exceeds {limit} bytes",
            extensions={"instance": scope["path"], "request_id": scope["state"]["request_id"]},
        )
        await response(scope, receive, send)
