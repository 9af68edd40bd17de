"""Contract fuzzing: every service and the gateway served for real, on a database of its own.

The four services and a gateway in front of them run under uvicorn in a background thread
with its own event loop (the schemathesis tests are synchronous and call them over HTTP, as
any client would). They use a fresh database migrated with every part's chain — the fuzzer
commits whatever it creates, which must not leak into the other tests' database — and the
session's real broker. ``RAPPORT_FUZZ_EXAMPLES`` is the number of examples per operation
(CI: a handful; ``make fuzz``: enough for ≥ 1,000 per spec).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.python import Function

from gateway import config as gateway_config
from gateway import main as gateway_main
from gateway.auth.dev import mint_dev_token
from services.customer360 import config as c360_config
from services.customer360 import main as c360_main
from services.interactions import config as interactions_config
from services.interactions import main as interactions_main
from services.orders import config as orders_config
from services.orders import main as orders_main
from services.segmentation import config as segmentation_config
from services.segmentation import main as segmentation_main
from shared.migrate import upgrade_all
from shared.parts import PARTS
from tests.conftest import Infra
from tests.gateway.edge.servers import bound_socket, serve

# schemathesis 4.32's lazy loader (``from_fixture``) relabels the running item through
# ``Node._nodeid``, which pytest 9 replaced with ``Node._id``: read the real node id, and keep
# it (each operation is reported as a subtest with its own label anyway).
if not hasattr(Function, "_nodeid"):
    Function._nodeid = property(  # type: ignore[attr-defined]
        lambda self: self.nodeid, lambda self, value: None
    )

SERVICES: dict[str, tuple[Any, Any]] = {
    "customer360": (c360_main.create_app, c360_config.Settings),
    "interactions": (interactions_main.create_app, interactions_config.Settings),
    "orders": (orders_main.create_app, orders_config.Settings),
    "segmentation": (segmentation_main.create_app, segmentation_config.Settings),
}


@dataclass
class Stack:
    """Base URLs of the running services (by name) and of the gateway."""

    urls: dict[str, str]
    gateway_settings: gateway_config.Settings
    examples: dict[str, int] = field(default_factory=dict)
    #: Known, not yet fixed contract deviations met (reason: operation → times).
    known: dict[str, int] = field(default_factory=dict)

    def gateway_token(self, role: str = "admin") -> str:
        return mint_dev_token(
            self.gateway_settings, role=role, subject="fuzz-admin", ttl_s=6 * 3600
        )


class _LoopThread:
    """An event loop in a daemon thread; coroutines are submitted to it from the tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fuzz-servers", daemon=True
        )
        self.thread.start()

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def stack(infra: Infra, make_settings: Callable[..., Any]) -> Iterator[Stack]:
    name = f"rapport_fuzz_{uuid.uuid4().hex[:8]}"
    database_url = infra.create_database(name)
    loop: _LoopThread | None = None
    stop: Future[None] | None = None
    try:
        upgrade_all({p.name: database_url for p in PARTS})
        loop = _LoopThread()
        ready: Future[Stack] = Future()
        stop = Future()

        async def main() -> None:
            try:
                async with AsyncExitStack() as exits:
                    # Sockets first: the services call each other (resolve, privacy export),
                    # so each needs every other's URL before any of them starts.
                    sockets = {service: bound_socket() for service in SERVICES}
                    urls = {
                        service: f"http://127.0.0.1:{sock.getsockname()[1]}"
                        for service, sock in sockets.items()
                    }
                    for sock in sockets.values():
                        exits.callback(sock.close)  # those never served, if start-up fails
                    for service, (factory, settings_cls) in SERVICES.items():
                        overrides: dict[str, Any] = {"database_url": database_url}
                        for other, url in urls.items():
                            if f"{other}_url" in settings_cls.model_fields:
                                overrides[f"{other}_url"] = url
                        app = factory(make_settings(settings_cls, **overrides))
                        await exits.enter_async_context(serve(app, sock=sockets[service]))
                    settings = make_settings(
                        gateway_config.Settings,
                        database_url=database_url,
                        rate_limits={"default": 10_000_000, "admin": 10_000_000},
                        **{f"{service}_url": url for service, url in urls.items()},
                    )
                    gateway_url = await exits.enter_async_context(
                        serve(gateway_main.create_app(settings))
                    )
                    urls["gateway"] = gateway_url
                    _LAST_STACK["stack"] = Stack(urls, settings)
                    ready.set_result(_LAST_STACK["stack"])
                    await asyncio.wrap_future(stop)
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        done = asyncio.run_coroutine_threadsafe(main(), loop.loop)
        stack = ready.result(120)
        try:
            yield stack
        finally:
            stop.set_result(None)
            done.result(60)
    finally:
        if loop is not None:
            loop.close()
        infra.drop_database(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    stack = _LAST_STACK.get("stack")
    if stack is None or not stack.examples:
        return
    terminalreporter.section("contract fuzzing")
    for spec, count in sorted(stack.examples.items()):
        terminalreporter.write_line(f"{spec:<24} {count:>7} examples run")
    terminalreporter.write_line(f"{'total':<24} {sum(stack.examples.values()):>7} examples run")
    if stack.known:
        terminalreporter.write_line(
            "known contract deviations met (not failed; RAPPORT_FUZZ_STRICT=1):"
        )
        for key, count in sorted(stack.known.items()):
            terminalreporter.write_line(f"  {count:>5} x {key}")


_LAST_STACK: dict[str, Stack] = {}
