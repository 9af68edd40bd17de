"""Real upstreams and real gateways, served by uvicorn in the session's event loop.

* ``services``: the four real services (customer360, interactions, orders, segmentation) on
  the test database, for the contract (OpenAPI) and end-to-end values.
* ``lab``: a gateway whose upstreams are chosen to misbehave — customer360 is real,
  interactions is the echo upstream (says what it received, streams, is slow on demand),
  orders resets connections, segmentation is down (nothing listens).
* ``full``: a gateway in front of the four real services.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from gateway.main import create_app
from services.customer360 import config as c360_config
from services.customer360 import main as c360_main
from services.interactions import config as interactions_config
from services.interactions import main as interactions_main
from services.orders import config as orders_config
from services.orders import main as orders_main
from services.segmentation import config as segmentation_config
from services.segmentation import main as segmentation_main
from tests.gateway.edge.servers import EchoLog, RawServer, echo_app, serve, unused_url

#: Roles with room for every test, except ``marketing`` (60 a minute: refills 1/s) and
#: ``analyst`` (3 a minute) for the rate-limit tests.
RATE_LIMITS = {
    "admin": 1_000_000,
    "sales": 1_000_000,
    "marketing": 60,
    "support": 1_000_000,
    "analyst": 3,
    "partner": 1_000_000,
    "default": 600,
}
CORS_ORIGIN = "https://app.example.test"
MAX_BODY = 1_048_576
UPSTREAM_TIMEOUT_S = 0.5

SERVICES: dict[str, tuple[Any, Any]] = {
    "customer360": (c360_main.create_app, c360_config.Settings),
    "interactions": (interactions_main.create_app, interactions_config.Settings),
    "orders": (orders_main.create_app, orders_config.Settings),
    "segmentation": (segmentation_main.create_app, segmentation_config.Settings),
}


@dataclass
class Gateway:
    url: str
    settings: Settings
    app: Any
    client: httpx.AsyncClient

    def token(self, role: str = "admin", subject: str | None = None) -> str:
        return mint_dev_token(
            self.settings, role=role, subject=subject or f"user-{uuid.uuid4().hex[:8]}"
        )

    def auth(self, role: str = "admin", subject: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(make_settings: Callable[..., Any]) -> AsyncIterator[dict[str, str]]:
    async with AsyncExitStack() as stack:
        urls = {}
        for name, (factory, settings_cls) in SERVICES.items():
            urls[name] = await stack.enter_async_context(
                serve(factory(make_settings(settings_cls)))
            )
        yield urls


@pytest.fixture(scope="session")
def echo_log() -> EchoLog:
    return EchoLog()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def echo_url(echo_log: EchoLog) -> AsyncIterator[str]:
    async with serve(echo_app(echo_log)) as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def raw_server() -> AsyncIterator[tuple[RawServer, str]]:
    server = RawServer()
    async with server.running() as url:
        yield server, url


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Gateway(url, settings, app, client)


def gateway_settings(make_settings: Callable[..., Any], **upstreams: str) -> Settings:
    values: dict[str, Any] = {
        "upstream_timeout_s": UPSTREAM_TIMEOUT_S,
        "upstream_connect_timeout_s": 0.5,
        "max_body_bytes": MAX_BODY,
        "rate_limits": RATE_LIMITS,
        "cors_origins": [CORS_ORIGIN],
    }
    values.update({f"{name}_url": url for name, url in upstreams.items()})
    settings: Settings = make_settings(Settings, **values)
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def lab(
    make_settings: Callable[..., Any],
    services: dict[str, str],
    echo_url: str,
    raw_server: tuple[RawServer, str],
) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        make_settings,
        customer360=services["customer360"],
        interactions=echo_url,
        orders=raw_server[1],
        segmentation=unused_url(),
    )
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def full(
    make_settings: Callable[..., Any], services: dict[str, str]
) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(make_settings, **services)) as gateway:
        yield gateway
