"""Shared by the campaign tests: a real local SMTP server (aiosmtpd) that keeps what
arrives, and seeding the recipient projection through the service's real handlers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from email.message import EmailMessage, Message
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from services.interactions.campaign.sender import CampaignSender
from services.interactions.config import Settings
from shared.db import Database
from shared.events import ConsentState, CustomerCreated, SegmentEntered
from tests.services.interactions.careplan_support import Clock, deliver
from tests.support import bearer

T0 = datetime(2026, 1, 1, tzinfo=UTC)

#: Quiet hours four hours wide, from five to nine hours after this hour (UTC), on whole
#: hours: a customer at UTC+7 is inside them, one in UTC is not, for the next two hours
#: whatever the minute this module is imported (collection may precede the test by minutes,
#: across an hour boundary).
_NOW = datetime.now(UTC)
QUIET_START = time((_NOW.hour + 5) % 24)
QUIET_END = time((_NOW.hour + 9) % 24)
QUIET_TZ = "Etc/GMT-7"  # POSIX sign: UTC+7


def campaign_settings(make_settings: Any, smtp: SmtpServer, **overrides: Any) -> Settings:
    """interactions for campaign tests: the sender driven by the test (one connection), the
    schedulers off, a cap of 1 per 7 days, the quiet hours above, no tracking links."""
    values: dict[str, Any] = {
        "sla_scheduler_enabled": False,
        "care_plan_scheduler_enabled": False,
        "campaign_sender_enabled": False,
        "campaign_sender_concurrency": 1,  # the test's one bound connection
        "smtp_port": smtp.port,
        "campaign_frequency_cap": 1,
        "campaign_frequency_days": 7,
        "campaign_quiet_start": QUIET_START.strftime("%H:%M"),
        "campaign_quiet_end": QUIET_END.strftime("%H:%M"),
        "campaign_tracking_base_url": "",  # exact bodies; tracking has its own tests
        **overrides,
    }
    return make_settings(Settings, **values)  # type: ignore[no-any-return]


@dataclass
class Received:
    to: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.part("plain")

    def part(self, subtype: str) -> str:
        assert isinstance(self.message, EmailMessage)
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, subtype
        return str(part.get_content()).replace("\r\n", "\n")

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class Inbox:
    """aiosmtpd handler: every message accepted, kept in arrival order (optionally slowly)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.received: list[Received] = []
        #: Recipient → the SMTP answer refusing it (e.g. ``451 4.2.1 try later``).
        self.refuse: dict[str, str] = {}
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        answer = self.refuse.get(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        content = envelope.content
        raw = content if isinstance(content, bytes) else content.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.to]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """A real SMTP server on localhost, in its own thread."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.inbox = Inbox(delay_s)
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def consent(*channels: str) -> dict[str, ConsentState]:
    return {c: ConsentState(granted=True, at=T0, source="signup-form") for c in channels}


async def seed_customer(
    database: Database,
    name: str,
    *,
    email_address: str | None = None,
    phone: str | None = None,
    channels: tuple[str, ...] = ("email",),
    segment_id: uuid.UUID | None = None,
    **fields: Any,
) -> uuid.UUID:
    """A customer as customer360 announces it (and, with ``segment_id``, as segmentation
    puts it in a segment), applied through the service's subscribed handlers."""
    customer_id = uuid.uuid4()
    events: list[Any] = [
        CustomerCreated(
            customer_id=customer_id,
            display_name=name,
            emails=[email_address] if email_address else [],
            phones=[phone] if phone else [],
            created_at=T0,
            consent=consent(*channels),
            **fields,
        )
    ]
    if segment_id is not None:
        events.append(SegmentEntered(customer_id=customer_id, segment_id=segment_id, entered_at=T0))
    await deliver(database, *events)
    return customer_id


class FakeSegmentation:
    """segmentation's ``GET /segments/{id}`` as an ``httpx.MockTransport``: the ids in
    ``known`` exist (every id with ``everything``), others are a 404; ``down`` refuses the
    connection. Installed on an app's segment directory before its first use."""

    def __init__(self, *, everything: bool = False) -> None:
        self.everything = everything
        self.known: set[uuid.UUID] = set()
        self.down = False
        #: ``(segment id, Authorization header)`` of every request.
        self.calls: list[tuple[str, str]] = []

    def install(self, app: FastAPI) -> FakeSegmentation:
        app.state.campaign_segments.transport = httpx.MockTransport(self._handle)
        return self

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        segment_id = request.url.path.rsplit("/", 1)[-1]
        self.calls.append((segment_id, request.headers.get("Authorization", "")))
        if self.everything or uuid.UUID(segment_id) in self.known:
            return httpx.Response(200, json={"id": segment_id, "member_count": 0})
        return httpx.Response(
            404,
            json={"type": "https://rapport.dev/problems/not-found", "status": 404},
            headers={"Content-Type": "application/problem+json"},
        )


def writer() -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii")


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/campaigns", json={"name": "c", **body}, headers=writer())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def start(client: httpx.AsyncClient, campaign: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/campaigns/{campaign['id']}:start", headers=writer())


async def started(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """A campaign created and started (``200``)."""
    campaign = await create(client, **body)
    response = await start(client, campaign)
    assert response.status_code == 200, response.text
    return campaign


async def report(client: httpx.AsyncClient, campaign: dict[str, Any], **params: Any) -> Any:
    response = await client.get(
        f"/campaigns/{campaign['id']}/report", params=params, headers=writer()
    )
    assert response.status_code == 200, response.text
    return response.json()


def sender(app: FastAPI, settings: Settings, at: datetime | None = None) -> CampaignSender:
    return CampaignSender(app.state.database, settings, now=Clock(at or datetime.now(UTC)))


def addr() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"
