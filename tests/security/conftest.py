"""The stack the OWASP API Security Top 10 (2023) checks run against: the four real services
served by uvicorn on the test database, and a real gateway in front of them. Every request
goes through the gateway with a real token (``mint_dev_token``) or a real API key.

Services other than customer360 learn who owns a customer from customer events; the relay
and consumers are off in tests (see ``make_settings``), so :meth:`Stack.own` applies the
``customer.created`` event to their ``customer_scope`` projection through their own
subscription handlers, exactly as their consumers would.

These checks write real, committed rows to the session's database, which tests of other
packages share (their schedulers scan every ticket and task). After each module,
:meth:`Stack.tidy` closes the tickets and cancels the tasks of every customer it created,
through the API, so no SLA or due-date scheduler elsewhere finds them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from services.interactions.subscriptions import subscriptions as interactions_subscriptions
from services.orders.subscriptions import subscriptions as orders_subscriptions
from services.segmentation.subscriptions import subscriptions as segmentation_subscriptions
from shared.events import CustomerCreated, Envelope
from tests.gateway.edge.conftest import SERVICES, Gateway, running_gateway
from tests.gateway.edge.servers import serve

PROBLEM = "application/problem+json"
CORS_ORIGIN = "https://app.example.test"
#: Small enough to test cheaply, large enough for every ordinary request of these tests.
MAX_BODY = 65_536
#: Room for every check; the rate-limit checks run a gateway of their own with small quotas.
RATE_LIMITS = dict.fromkeys(
    ("admin", "sales", "marketing", "support", "analyst", "partner", "default"), 1_000_000
)

_PROJECTIONS = {
    "interactions": interactions_subscriptions,
    "orders": orders_subscriptions,
    "segmentation": segmentation_subscriptions,
}


@dataclass
class Stack:
    gateway: Gateway
    apps: dict[str, FastAPI]
    urls: dict[str, str]
    #: Customers created by :meth:`customer` since the last :meth:`tidy`.
    created: list[str] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.gateway.client

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    def auth(
        self,
        role: str = "admin",
        subject: str | None = None,
        *,
        scope_mode: str | None = None,
        team: str | None = None,
    ) -> dict[str, str]:
        token = mint_dev_token(
            self.settings,
            role=role,
            subject=subject or f"{role}-{uuid.uuid4().hex[:8]}",
            scope_mode=scope_mode,
            team=team,
        )
        return {"Authorization": f"Bearer {token}"}

    async def customer(self, owner: str, team: str | None = None, **fields: Any) -> str:
        """A customer created by an admin through the gateway, owned by ``owner``, and known
        as such to every service's data-scope projection."""
        body = {"display_name": f"Person of {owner}", "owner_id": owner, **fields}
        if team is not None:
            body["team_id"] = team
        response = await self.client.post("/api/v1/customers", json=body, headers=self.auth())
        assert response.status_code == 201, response.text
        customer_id = response.json()["id"]
        self.created.append(str(customer_id))
        await self.own(uuid.UUID(customer_id), owner, team)
        return str(customer_id)

    async def tidy(self) -> None:
        """Close the open tickets and cancel the open tasks of the customers created."""
        admin = self.auth("admin")
        for customer_id in self.created:
            for kind, open_states, action, body in (
                ("tickets", ("open", "pending", "resolved"), ":transition", {"to": "closed"}),
                ("tasks", ("open",), ":cancel", None),
            ):
                page = await self.client.get(
                    f"/api/v1/{kind}",
                    params={"customer_id": customer_id, "limit": 200},
                    headers=admin,
                )
                assert page.status_code == 200, page.text
                for item in page.json()["items"]:
                    if item["status"] in open_states:
                        done = await self.client.post(
                            f"/api/v1/{kind}/{item['id']}{action}", json=body, headers=admin
                        )
                        assert done.status_code == 200, done.text
        self.created.clear()

    async def own(self, customer_id: uuid.UUID, owner: str, team: str | None) -> None:
        event = CustomerCreated(
            customer_id=customer_id,
            display_name=f"Person of {owner}",
            owner_id=owner,
            team_id=team,
            created_at=datetime.now(UTC),
        )
        for name, subscriptions in _PROJECTIONS.items():
            handler = subscriptions.handler_for(event.event_type)
            assert handler is not None, name
            async with self.apps[name].state.database.session() as session:
                await handler(session, event, Envelope.wrap(event, source="/security-tests"))


def security_gateway_settings(
    make_settings: Callable[..., Any], urls: dict[str, str], **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "upstream_timeout_s": 10.0,
        "upstream_connect_timeout_s": 2.0,
        "max_body_bytes": MAX_BODY,
        "rate_limits": RATE_LIMITS,
        "cors_origins": [CORS_ORIGIN],
        **{f"{name}_url": url for name, url in urls.items()},
    }
    values.update(overrides)
    settings: Settings = make_settings(Settings, **values)
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(make_settings: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        apps: dict[str, FastAPI] = {}
        urls: dict[str, str] = {}
        for name, (factory, settings_cls) in SERVICES.items():
            # interactions and orders ask customer360 about customers they have not seen yet
            resolves = name in ("interactions", "orders")
            extra = {"customer360_url": urls["customer360"]} if resolves else {}
            settings = make_settings(settings_cls, **extra)
            apps[name] = factory(settings)
            urls[name] = await exits.enter_async_context(serve(apps[name]))
        gateway = await exits.enter_async_context(
            running_gateway(security_gateway_settings(make_settings, urls))
        )
        yield Stack(gateway, apps, urls)


@pytest_asyncio.fixture(scope="module", loop_scope="session", autouse=True)
async def tidy(stack: Stack) -> AsyncIterator[None]:
    yield
    await stack.tidy()
