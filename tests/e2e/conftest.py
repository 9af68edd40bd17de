"""One running stack for the end-to-end journeys: the gateway and the four services as real
processes (:func:`tests.support.process_stack`, as ``make run`` starts them), reached only
through the gateway, with the credentials each kind of caller really has.

* People (a sales rep, a support agent, a marketer, an admin) carry development tokens
  minted as ``rapport token`` mints them.
* The partner shop has an API key an admin created (``POST /admin/api-keys``), and signs its
  webhooks with the Standard Webhooks secret of the sources an admin registered: ``shop``
  (order webhooks, read by orders) and ``conversations`` (calls and chats, read by
  interactions, whose default ``INTERACTIONS_WEBHOOK_FORMATS`` map that name).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings as GatewaySettings
from shared.standard_webhooks import sign
from tests.conftest import Infra
from tests.services.interactions.campaign_support import SmtpServer
from tests.support import ProcessStack, process_stack

T = TypeVar("T")

#: How long an eventually consistent answer may take on a loaded machine.
DEADLINE_S = 30.0


def token(role: str, subject: str, team: str | None = None) -> dict[str, str]:
    """A development token, exactly as ``rapport token --role … --team …`` mints it."""
    settings = GatewaySettings(environment="development")
    minted = mint_dev_token(settings, role=role, subject=subject, team=team, ttl_s=3600)
    return {"Authorization": f"Bearer {minted}"}


@dataclass
class World:
    """The running stack, its callers, and what the journeys learn as they go."""

    stack: ProcessStack
    client: httpx.AsyncClient
    admin: dict[str, str]
    sales: dict[str, str]
    support: dict[str, str]
    marketing: dict[str, str]
    partner: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # webhook source → secret
    #: Facts shared between journeys (customer ids, order ids, …), in the order learnt.
    facts: dict[str, Any] = field(default_factory=dict)

    async def webhook(self, source: str, body: dict[str, Any] | list[Any]) -> dict[str, Any]:
        """POST ``body`` to the gateway's front door as the partner would: signed with the
        source's secret (Standard Webhooks). Returns the receipt (202 expected)."""
        raw = json.dumps(body).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        at = int(time.time())
        response = await self.client.post(
            f"{self.stack.root}/webhooks/{source}",
            content=raw,
            headers={
                "webhook-id": msg_id,
                "webhook-timestamp": str(at),
                "webhook-signature": sign(self.secrets[source], msg_id, at, raw),
                "content-type": "application/json",
            },
        )
        assert response.status_code == 202, response.text
        receipt: dict[str, Any] = response.json()
        assert receipt["status"] == "accepted"
        return receipt


async def eventually(
    request: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    what: str,
    deadline_s: float = DEADLINE_S,
) -> T:
    """Repeat ``request`` until ``ready`` holds for its answer; fail, showing the last answer,
    after ``deadline_s``. Wait for *every* value a check reads: figures fed by different
    events (an order, a segment entry) arrive in any order. Then assert them exactly."""
    until = time.monotonic() + deadline_s
    while True:
        answer = await request()
        if ready(answer):
            return answer
        if time.monotonic() > until:
            shown = (
                f"{answer.status_code} {answer.text[:2000]}"
                if isinstance(answer, httpx.Response)
                else repr(answer)[:2000]
            )
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}; last answer {shown}")
        await asyncio.sleep(0.25)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    """The SMTP server campaign e-mail goes to (a real one, on localhost)."""
    with SmtpServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(infra: Infra, tmp_path_factory: Any, smtp: SmtpServer) -> AsyncIterator[World]:
    work_dir: Path = tmp_path_factory.mktemp("e2e")
    env = {
        "INTERACTIONS_SMTP_PORT": str(smtp.port),
        "INTERACTIONS_CAMPAIGN_SENDER_INTERVAL_S": "0.5",
        # no quiet hours (start = end): the journey must not depend on the time of day
        "INTERACTIONS_CAMPAIGN_QUIET_START": "00:00",
        "INTERACTIONS_CAMPAIGN_QUIET_END": "00:00",
    }
    async with (
        process_stack(infra, work_dir, prefix="rapport_e2e", env=env) as stack,
        httpx.AsyncClient(base_url=stack.gateway, timeout=20.0) as client,
    ):
        world = World(
            stack,
            client,
            admin=token("admin", "admin-ops"),
            sales=token("sales", "rep-li", team="north"),
            support=token("support", "agent-chen"),
            marketing=token("marketing", "marketer-ana"),
        )
        key = await client.post(
            "/admin/api-keys",
            json={"name": "shop sync", "role": "partner"},
            headers=world.admin,
        )
        assert key.status_code == 201, key.text
        assert key.json()["key"].startswith("rpk_")
        world.partner = {"X-API-Key": key.json()["key"]}
        for source in ("shop", "conversations"):
            created = await client.post(
                "/admin/webhook-sources", json={"name": source}, headers=world.admin
            )
            assert created.status_code == 201, created.text
            world.secrets[source] = created.json()["secret"]["secret"]
        yield world
