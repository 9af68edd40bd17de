"""Crash-resume: the sender runs as its own process, is killed with SIGKILL mid-campaign
(the SMTP server slowed so messages are in flight), and restarted. Every consented recipient
must then have exactly one message at the SMTP server, or be ``unconfirmed`` (claimed by
the killed sender: at most one) — and nothing arrives twice."""

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import CampaignMessage
from tests.conftest import Infra
from tests.services.interactions.campaign_support import (
    FakeSegmentation,
    SmtpServer,
    seed_customer,
)
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[3]
CONSENTED = 24
UNCONSENTED = 4


@pytest.fixture(scope="module")
def slow_smtp() -> Iterator[SmtpServer]:
    with SmtpServer(delay_s=0.3) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    app = create_app(
        make_settings(
            Settings,
            sla_scheduler_enabled=False,
            care_plan_scheduler_enabled=False,
            campaign_sender_enabled=False,
            campaign_quiet_start="00:00",  # quiet hours off
            campaign_quiet_end="00:00",
        )
    )
    FakeSegmentation(everything=True).install(app)  # segments here exist
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # A separate process reads what this test writes: it must be committed.
    async with api_client(app, rollback=False) as c:
        yield c


def start_sender(infra: Infra, smtp: SmtpServer, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INTERACTIONS_ENVIRONMENT": "test",
        "INTERACTIONS_DATABASE_URL": infra.database_url,
        "INTERACTIONS_SMTP_PORT": str(smtp.port),
        "INTERACTIONS_CAMPAIGN_SENDER_INTERVAL_S": "0.1",
        "INTERACTIONS_CAMPAIGN_SENDER_CONCURRENCY": "3",
        "INTERACTIONS_CAMPAIGN_SEND_LEASE_S": "2",
        "INTERACTIONS_CAMPAIGN_RATE_PER_S": "1000",
        # Quiet hours off here too: the sender judges them again when a message is due.
        "INTERACTIONS_CAMPAIGN_QUIET_START": "00:00",
        "INTERACTIONS_CAMPAIGN_QUIET_END": "00:00",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.interactions.campaign.sender"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_killed_sender_resumes_without_sending_anything_twice(
    client: httpx.AsyncClient,
    app: FastAPI,
    infra: Infra,
    slow_smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    db = app.state.database
    segment = uuid.uuid4()
    addresses: dict[uuid.UUID, str] = {}
    for i in range(CONSENTED):
        address = f"crash-{i}-{uuid.uuid4().hex[:6]}@example.com"
        addresses[
            await seed_customer(db, f"Crash {i}", email_address=address, segment_id=segment)
        ] = address
    refused = [f"nope-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(UNCONSENTED)]
    for address in refused:
        await seed_customer(db, "No", email_address=address, channels=(), segment_id=segment)
    headers = bearer("interactions:read", "interactions:write")
    created = await client.post(
        "/campaigns",
        json={
            "name": "crash",
            "channel": "email",
            "segment_id": str(segment),
            "subject": "Hello {{ customer.display_name }}",
            "body": "b",
        },
        headers=headers,
    )
    campaign_id = created.json()["id"]
    started = await client.post(f"/campaigns/{campaign_id}:start", headers=headers)
    assert started.json()["queued"] == CONSENTED, started.text
    inbox = slow_smtp.inbox
    log = tmp_path / "sender.log"

    first = start_sender(infra, slow_smtp, log)
    try:

        async def some_arrived() -> bool:
            return len(inbox.received) >= 6

        await wait_for(some_arrived, 60, "the first messages")
        first.send_signal(signal.SIGKILL)  # mid-campaign, messages in flight
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = len(inbox.received)
    assert at_kill < CONSENTED, "the sender finished before it was killed"

    second = start_sender(infra, slow_smtp, log)
    try:

        async def completed() -> bool:
            response = await client.get(f"/campaigns/{campaign_id}/report", headers=headers)
            return bool(response.json()["status"] == "completed")

        await wait_for(completed, 90, "the campaign to complete")
    finally:
        second.terminate()
        second.wait(10)
    await asyncio.sleep(0.5)  # a message the killed sender had in flight may still land

    async with db.session() as session:
        messages = list(
            await session.scalars(
                select(CampaignMessage).where(CampaignMessage.campaign_id == uuid.UUID(campaign_id))
            )
        )
    status = {m.customer_id: m.status for m in messages}
    ids = collections.Counter(r.message_id for r in inbox.received)
    assert [m for m, n in ids.items() if n > 1] == [], "a message arrived twice"
    for customer_id, address in addresses.items():
        got = len(inbox.to(address))
        if status[customer_id] == "sent":
            assert got == 1, (address, got)
        else:
            assert (status[customer_id], got <= 1) == ("unconfirmed", True), log.read_text()
    for address in refused:
        assert inbox.to(address) == []
    counts = collections.Counter(status.values())
    assert counts["sent"] + counts["unconfirmed"] == CONSENTED
    assert counts["skipped"] == UNCONSENTED
    assert counts["unconfirmed"] >= 1, "no message was in flight at the kill"
    figures = (await client.get(f"/campaigns/{campaign_id}/report", headers=headers)).json()
    assert (figures["sent"], figures["unconfirmed"]) == (counts["sent"], counts["unconfirmed"])
