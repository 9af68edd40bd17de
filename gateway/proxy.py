"""Forwarding a request to the service that owns it, as a streaming reverse proxy.

Why this shape:

* **One pooled aiohttp client for every upstream.** Measured (shared/FIELD-NOTES.md): a
  shared ``aiohttp.ClientSession`` keeps ~5 times the throughput of ``httpx.AsyncClient`` under
  concurrency. Keep-alive connections are reused; idle ones are closed after
  :data:`KEEPALIVE_S`, below uvicorn's default 5 s keep-alive, so the gateway never picks a
  connection the service is closing at that moment (which would fail a POST).
* **Streaming both ways.** The request body is handed to aiohttp as an async iterator over
  the ASGI ``receive`` channel (``Content-Length`` kept when the client sent one, chunked
  otherwise), and the response is relayed chunk by chunk as it arrives (``readany``), with
  ASGI back-pressure (``send`` waits while the client is slow). Nothing is buffered whole.
* **Explicit failure, never a hang.** ``connect`` timeout (also bounds the wait for a pooled
  connection) and an idle-read timeout (``upstream_timeout_s``: the wait for the response
  head and between body chunks). Before the response has started, failures become problem
  details::

      connect error (refused, DNS, connect timeout)  503 upstream-unavailable
      no response head within upstream_timeout_s     504 upstream-timeout
      reset / malformed response before the head     502 bad-gateway
      request body over max_body_bytes (chunked)     413 payload-too-large

  After the head has been relayed a status can no longer change: the client connection is
  closed mid-body (the client sees a truncated response, never a silently short "success").
* **One retry, only where it is safe.** A connect error means the upstream saw nothing, so
  an idempotent request (RFC 9110 §9.2.2) that has not started streaming its body is tried
  once more after :data:`RETRY_DELAY_S`; a POST never is. (aiohttp itself also retries an
  idempotent request once when a reused keep-alive connection turns out closed.)
* **Redirects are relayed, not followed**; responses are not decompressed; no cookie jar.

Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded in either direction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.routes import PUBLIC_PREFIX
from shared.errors import PayloadTooLarge, problem_response

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT_METHODS",
    "KEEPALIVE_S",
    "RETRY_DELAY_S",
    "UPSTREAM_ERRORS",
    "UPSTREAM_RETRIES",
    "Proxy",
    "Upstream",
    "send_problem",
]

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
KEEPALIVE_S = 4.0
RETRY_DELAY_S = 0.05

#: RFC 9110 §7.6.1 hop-by-hop fields, plus ``proxy-connection`` (legacy) — lower case.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Response fields the gateway's own server or middleware writes itself.
_RESPONSE_OWN = frozenset({b"server", b"date", b"x-request-id"})
_DROP_RESPONSE = HOP_BY_HOP | _RESPONSE_OWN
_LOCATION_HEADERS = frozenset({b"location", b"content-location"})
_PUBLIC_PREFIX = PUBLIC_PREFIX.encode()

UPSTREAM_ERRORS = Counter(
    "rapport_gateway_upstream_errors_total",
    "Requests the gateway could not complete with an upstream, by kind.",
    ["upstream", "kind"],
)
UPSTREAM_RETRIES = Counter(
    "rapport_gateway_upstream_retries_total",
    "Idempotent requests retried after an upstream connect error.",
    ["upstream", "method"],
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service the gateway forwards to: ``base`` is its URL (``http://host:port``)."""

    name: str
    base: str

    def url(self, raw_path: bytes, query_string: bytes) -> URL:
        # The raw (still percent-encoded) path is forwarded as the client sent it.
        target = self.base + raw_path.decode("latin-1")
        if query_string:
            target += "?" + query_string.decode("latin-1")
        return URL(target, encoded=True)


class _ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class _RequestBody:
    """The ASGI request body as an async iterator, remembering what happened to it."""

    __slots__ = ("_receive", "disconnected", "started", "too_large")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.started = False
        self.too_large = False
        self.disconnected = False

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            try:
                message = await self._receive()
            except HTTPException as exc:
                # The shared middleware's limit on a body without Content-Length. Raising
                # (not returning) aborts the upstream request mid-body, so the service never
                # mistakes a truncated body for a complete one.
                if exc.status_code == 413:
                    self.too_large = True
                raise
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise _ClientGone
            body: bytes = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return bool(value != b"0")
        if name == b"transfer-encoding":
            return True
    return False


class Proxy:
    """The pooled client (created in :meth:`start`, inside the running loop) and
    :meth:`forward`."""

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        pool_size: int,
        max_body_bytes: int,
    ) -> None:
        self.upstreams = {
            name: Upstream(name, base.rstrip("/")) for name, base in upstreams.items()
        }
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
        )
        self.pool_size = pool_size
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.pool_size,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE_S,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # Forward what the client sent, add nothing of aiohttp's own.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            trust_env=False,
            read_bufsize=2**16,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the proxy is not started")
        return self._session

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        upstream: Upstream,
        raw_path: bytes,
        headers: list[tuple[str, str]],
        extra_response_headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Relay one request to ``upstream`` and its response back; ``headers`` are the
        request headers to send (already filtered, authorization replaced)."""
        session = self.session
        method: str = scope["method"]
        body = _RequestBody(receive) if _has_body(scope) else None
        url = upstream.url(raw_path, scope["query_string"])
        retried = False
        while True:
            try:
                response = await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body.chunks() if body is not None else None,
                    allow_redirects=False,
                )
                break
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                if body is not None and (body.too_large or body.disconnected):
                    await self._body_failed(scope, receive, send, body, upstream)
                    return
                safe = method in IDEMPOTENT_METHODS and (body is None or not body.started)
                if safe and not retried:
                    retried = True
                    UPSTREAM_RETRIES.labels(upstream.name, method).inc()
                    logger.info("retrying %s %s after connect error: %s", method, url, exc)
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                await self._fail(scope, receive, send, upstream, "connect", exc)
                return
            except (aiohttp.ClientError, TimeoutError) as exc:
                if body is not None and (body.too_large or body.disconnected):
                    await self._body_failed(scope, receive, send, body, upstream)
                    return
                kind = "timeout" if isinstance(exc, TimeoutError) else "reset"
                await self._fail(scope, receive, send, upstream, kind, exc)
                return
        await self._relay(response, send, method, upstream, extra_response_headers)

    async def _relay(
        self,
        response: aiohttp.ClientResponse,
        send: Send,
        method: str,
        upstream: Upstream,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        out: list[tuple[bytes, bytes]] = []
        for name, value in response.raw_headers:
            name = name.lower()
            if name in _DROP_RESPONSE:
                continue
            if name in _LOCATION_HEADERS and value.startswith(b"/"):
                # Services speak their own paths; the caller knows them under /api/v1.
                value = _PUBLIC_PREFIX + value
            out.append((name, value))
        out.extend(extra_headers)
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            content = response.content
            while True:
                chunk = await content.readany()
                if not chunk or content.at_eof():
                    # The last chunk goes out with the end of the body: one send for the
                    # usual small JSON answer.
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Too late for a problem: returning without completing the response makes the
            # server close the connection, so the client sees the truncation.
            kind = "timeout" if isinstance(exc, TimeoutError) else "reset"
            UPSTREAM_ERRORS.labels(upstream.name, kind).inc()
            logger.warning(
                "%s %s: upstream %s failed mid-response: %s",
                method,
                response.url,
                upstream.name,
                exc,
            )
            response.close()
            return
        except BaseException:
            response.close()
            raise
        response.release()

    async def _fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        kind: str,
        exc: BaseException,
    ) -> None:
        UPSTREAM_ERRORS.labels(upstream.name, kind).inc()
        logger.warning(
            "%s %s: upstream %s %s error: %s",
            scope["method"],
            scope["path"],
            upstream.name,
            kind,
            exc,
        )
        if kind == "connect":
            status, slug, detail = (
                503,
                "upstream-unavailable",
                f"the {upstream.name} service is unavailable",
            )
        elif kind == "timeout":
            status, slug, detail = (
                504,
                "upstream-timeout",
                f"the {upstream.name} service did not answer in time",
            )
        else:
            status, slug, detail = (
                502,
                "bad-gateway",
                f"the {upstream.name} service sent no valid response",
            )
        headers = {"Retry-After": "1"} if status == 503 else None
        await send_problem(
            scope,
            receive,
            send,
            status,
            slug,
            detail,
            headers=headers,
            extensions={"upstream": upstream.name},
        )

    async def _body_failed(
        self, scope: Scope, receive: Receive, send: Send, body: _RequestBody, upstream: Upstream
    ) -> None:
        if body.disconnected:
            return  # nobody is listening any more
        await send_problem(
            scope,
            receive,
            send,
            413,
            PayloadTooLarge.slug,
            f"the request body exceeds {self.max_body_bytes} bytes",
        )


async def send_problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    slug: str,
    detail: str | None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> None:
    """Answer with an RFC 9457 problem naming the request (``instance``, ``request_id``)."""
    state = scope.get("state") or {}
    extra: dict[str, Any] = {"instance": scope["path"]}
    if state.get("request_id"):
        extra["request_id"] = state["request_id"]
    extra.update(extensions or {})
    response = problem_response(
        status, slug, detail, title=title, headers=headers, extensions=extra
    )
    await response(scope, receive, send)
