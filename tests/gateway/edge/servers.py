"""Real HTTP servers for the edge tests, all in the test's event loop.

* :func:`serve` runs any ASGI app (a real service, the gateway, :func:`echo_app`) under
  uvicorn on a free port.
* :func:`echo_app` is an upstream that says what it received, and can be slow or stream.
* :class:`RawServer` is an upstream that misbehaves at the TCP level (resets).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # pytest owns the signal handlers of the test process.
        yield


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def unused_url() -> str:
    """A URL nothing listens on (its port was free a moment ago)."""
    with bound_socket() as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serve(app: Any, *, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (httptools, like production); yields its base URL."""
    sock = sock or bound_socket()
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http="httptools",
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


# --- the echo upstream ----------------------------------------------------------------------


@dataclass
class EchoLog:
    """What the echo upstream saw, and the events streaming tests steer it with."""

    uploads: list[dict[str, Any]] = field(default_factory=list)
    aborted_uploads: int = 0
    first_chunk_received: asyncio.Event = field(default_factory=asyncio.Event)
    client_got_first_chunk: asyncio.Event = field(default_factory=asyncio.Event)


def echo_app(log: EchoLog) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.scope["path"],
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
                "body": body.decode(errors="replace"),
            },
            headers={"x-upstream": "echo", "server": "echo/1", "connection": "keep-alive"},
        )

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "5")))
        return JSONResponse({"slow": True})

    async def upload(request: Request) -> Response:
        """Counts and hashes a streamed body; waits for nothing, records everything."""
        digest = hashlib.sha256()
        size = chunks = 0
        try:
            async for chunk in request.stream():
                if chunk:
                    chunks += 1
                    size += len(chunk)
                    digest.update(chunk)
                    log.first_chunk_received.set()
        except ClientDisconnect:
            log.aborted_uploads += 1
            return Response(status_code=499)
        record = {
            "size": size,
            "chunks": chunks,
            "sha256": digest.hexdigest(),
            "transfer_encoding": request.headers.get("transfer-encoding"),
            "content_length": request.headers.get("content-length"),
        }
        log.uploads.append(record)
        return JSONResponse(record)

    async def download(request: Request) -> Response:
        """``n`` chunks of ``size`` bytes; the rest only once the client has the first."""
        n = int(request.query_params.get("n", "8"))
        size = int(request.query_params.get("size", "65536"))

        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * size
            async with asyncio.timeout(10):
                await log.client_got_first_chunk.wait()
            for _ in range(n - 1):
                yield b"b" * size

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/interactions/slow", slow),
            Route("/interactions/upload", upload, methods=["POST", "PUT"]),
            Route("/interactions/download", download),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


# --- an upstream that misbehaves at the TCP level -----------------------------------------------


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def reset_before_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
    await writer.drain()
    _reset(writer)


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    writer.write(b"x" * 1000)
    await writer.drain()
    await asyncio.sleep(0.05)
    _reset(writer)


class RawServer:
    """Answers ``/products/reset-before-head`` and ``/products/reset-mid-body`` badly."""

    def __init__(self) -> None:
        #: Request targets received, in order.
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            path = line.split(b" ")[1] if line.count(b" ") >= 2 else b""
            self.requests.append(path.decode())
            behaviour = reset_mid_body if path.endswith(b"reset-mid-body") else reset_before_head
            await behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        sock = bound_socket()
        self._server = await asyncio.start_server(self._handle, sock=sock)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            self._server.close()
            await self._server.wait_closed()
