"""Campaign schedules and triggers: send-time checks (consent, erasure, cancel, quiet hours,
caps when a message falls due), ``order_placed`` and ``task_due`` triggers, recurring runs,
and unknown segments. Real PostgreSQL, a real local SMTP server, the sender's clock
injected."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import CampaignMessage
from shared.db import Database
from shared.events import CustomerConsentChanged, CustomerErased
from tests.services.interactions.campaign_support import (
    SmtpServer,
    addr,
    create,
    report,
    seed_customer,
    sender,
    start,
    writer,
)
from tests.services.interactions.careplan_support import deliver
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Quiet hours as in test_campaigns.py: from five to nine hours after this hour (UTC), so a
#: customer at UTC+7 is inside them and one in UTC is not, for the next two hours.
_NOW = datetime.now(UTC)
QUIET_START = time((_NOW.hour + 5) % 24)
QUIET_END = time((_NOW.hour + 9) % 24)
QUIET_TZ = "Etc/GMT-7"  # POSIX sign: UTC+7


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def settings(make_settings: Any, smtp: SmtpServer) -> Settings:
    return make_settings(  # type: ignore[no-any-return]
        Settings,
        sla_scheduler_enabled=False,
        care_plan_scheduler_enabled=False,
        campaign_sender_enabled=False,
        campaign_sender_concurrency=1,  # the test's one bound connection
        smtp_port=smtp.port,
        campaign_frequency_cap=1,
        campaign_frequency_days=7,
        campaign_quiet_start=QUIET_START.strftime("%H:%M"),
        campaign_quiet_end=QUIET_END.strftime("%H:%M"),
        campaign_tracking_base_url="",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def messages(db: Database, campaign: dict[str, Any]) -> list[CampaignMessage]:
    async with db.session() as session:
        return list(
            (
                await session.scalars(
                    select(CampaignMessage)
                    .where(CampaignMessage.campaign_id == uuid.UUID(campaign["id"]))
                    .order_by(CampaignMessage.not_before, CampaignMessage.occurrence)
                )
            ).all()
        )


def quiet_end_after(at: datetime) -> datetime:
    """The end of the quiet hours of a customer in ``QUIET_TZ`` that ``at`` is inside."""
    local = at.astimezone(ZoneInfo(QUIET_TZ))
    end_day = local.date() + timedelta(days=0 if local.time() < QUIET_END else 1)
    return datetime.combine(end_day, QUIET_END, tzinfo=ZoneInfo(QUIET_TZ))


class TestSendTimeChecks:
    async def test_a_deferred_message_is_not_sent_once_consent_is_withdrawn(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        mail = addr()
        owl = await seed_customer(db, "Night Owl", email_address=mail, timezone=QUIET_TZ)
        campaign = await create(
            client, channel="email", customer_ids=[str(owl)], subject="s", body="b"
        )
        assert (await start(client, campaign)).json()["deferred"] == 1
        await deliver(
            db,
            CustomerConsentChanged(
                customer_id=owl, channel="email", granted=False, changed_at=datetime.now(UTC)
            ),
        )

        due = quiet_end_after(datetime.now(UTC)) + timedelta(seconds=1)
        assert await sender(app, settings, due).run_once() == 0

        assert smtp.inbox.to(mail) == []
        [message] = await messages(db, campaign)
        assert (message.status, message.skip_reason) == ("skipped", "no-consent")
        figures = await report(client, campaign)
        assert (figures["status"], figures["sent"], figures["skipped"]["no-consent"]) == (
            "completed",
            0,
            1,
        )

    async def test_an_erased_customer_gets_nothing_they_were_waiting_for(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        owl_mail, day_mail = addr(), addr()
        owl = await seed_customer(db, "Night Owl", email_address=owl_mail, timezone=QUIET_TZ)
        day = await seed_customer(db, "Day", email_address=day_mail, timezone="UTC")
        campaign = await create(
            client, channel="email", customer_ids=[str(owl), str(day)], subject="s", body="b"
        )
        started = (await start(client, campaign)).json()
        assert (started["queued"], started["deferred"]) == (1, 1)
        erased_at = datetime.now(UTC)
        await deliver(
            db,
            CustomerErased(customer_id=owl, erased_at=erased_at),
            CustomerErased(customer_id=day, erased_at=erased_at),
        )

        due = quiet_end_after(datetime.now(UTC)) + timedelta(seconds=1)
        assert await sender(app, settings, due).run_once() == 0

        assert (smtp.inbox.to(owl_mail), smtp.inbox.to(day_mail)) == ([], [])
        rows = await messages(db, campaign)
        assert sorted((m.status, m.skip_reason, m.address) for m in rows) == [
            ("skipped", "erased", None),
            ("skipped", "erased", None),
        ]
        assert (await report(client, campaign))["skipped"]["erased"] == 2

    async def test_cancelling_skips_queued_and_deferred_messages_at_once(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        owl_mail, day_mail = addr(), addr()
        owl = await seed_customer(db, "Night Owl", email_address=owl_mail, timezone=QUIET_TZ)
        day = await seed_customer(db, "Day", email_address=day_mail, timezone="UTC")
        campaign = await create(
            client, channel="email", customer_ids=[str(owl), str(day)], subject="s", body="b"
        )
        assert (await start(client, campaign)).status_code == 200

        cancelled = await client.post(f"/campaigns/{campaign['id']}:cancel", headers=writer())

        assert cancelled.json()["status"] == "cancelled"
        rows = await messages(db, campaign)
        assert [(m.status, m.skip_reason) for m in rows] == [("skipped", "cancelled")] * 2
        due = quiet_end_after(datetime.now(UTC)) + timedelta(seconds=1)
        assert await sender(app, settings, due).run_once() == 0
        assert (smtp.inbox.to(owl_mail), smtp.inbox.to(day_mail)) == ([], [])
        figures = await report(client, campaign)
        assert (figures["queued"], figures["deferred"], figures["skipped"]["cancelled"]) == (
            0,
            0,
            2,
        )

    async def test_quiet_hours_are_judged_again_when_a_queued_message_falls_due(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        mail = addr()
        ann = await seed_customer(db, "Ann", email_address=mail, timezone="UTC")
        campaign = await create(
            client, channel="email", customer_ids=[str(ann)], subject="s", body="b"
        )
        assert (await start(client, campaign)).json()["queued"] == 1

        # The sender only gets to it inside Ann's quiet hours (say it was down till then).
        night = datetime.combine(datetime.now(UTC).date(), QUIET_START, tzinfo=UTC)
        if night < datetime.now(UTC):
            night += timedelta(days=1)
        assert await sender(app, settings, night + timedelta(minutes=1)).run_once() == 0

        [message] = await messages(db, campaign)
        end = datetime.combine(
            night.date() + timedelta(days=0 if QUIET_START < QUIET_END else 1),
            QUIET_END,
            tzinfo=UTC,
        )
        assert (message.status, message.not_before, message.attempts) == ("deferred", end, 0)
        assert smtp.inbox.to(mail) == []
        assert await sender(app, settings, end).run_once() == 1
        assert len(smtp.inbox.to(mail)) == 1
