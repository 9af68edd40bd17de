"""Campaign schedules and triggers: send-time checks (consent, erasure, cancel, quiet hours,
caps when a message falls due), ``order_placed`` and ``task_due`` triggers, recurring runs,
and unknown segments. Real PostgreSQL, a real local SMTP server, the sender's clock
injected."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, select

from services.interactions.campaign import handlers
from services.interactions.campaign.segments import SegmentDirectory, UnknownSegment
from services.interactions.careplan.scheduler import CarePlanScheduler
from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import Campaign, CampaignMessage
from services.segmentation.config import Settings as SegmentationSettings
from services.segmentation.main import create_app as create_segmentation_app
from shared.db import Database
from shared.events import (
    CustomerConsentChanged,
    CustomerErased,
    CustomerMerged,
    OrderPlaced,
    TaskDue,
)
from tests.services.interactions.campaign_support import (
    QUIET_END,
    QUIET_START,
    QUIET_TZ,
    FakeSegmentation,
    SmtpServer,
    addr,
    campaign_settings,
    create,
    report,
    seed_customer,
    sender,
    start,
    started,
    writer,
)
from tests.services.interactions.careplan_support import Clock, deliver
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def settings(make_settings: Any, smtp: SmtpServer) -> Settings:
    return campaign_settings(make_settings, smtp)


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings, segmentation: FakeSegmentation) -> FastAPI:
    app = create_app(settings)
    segmentation.install(app)
    return app


@pytest.fixture(scope="module")
def segmentation() -> FakeSegmentation:
    return FakeSegmentation()


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


async def campaigns_named(db: Database, name: str) -> int:
    async with db.session() as session:
        found = await session.scalar(
            select(func.count()).select_from(Campaign).where(Campaign.name == name)
        )
    return int(found or 0)


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
        campaign = await started(
            client, channel="email", customer_ids=[str(owl), str(day)], subject="s", body="b"
        )

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

    async def test_a_merge_keeps_one_message_per_occurrence_for_the_survivor(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        db = app.state.database
        survivor = await seed_customer(db, "Ann", email_address=addr(), timezone="UTC")
        duplicate = await seed_customer(db, "Ann Dup", email_address=addr(), timezone="UTC")
        both = await started(
            client,
            channel="email",
            customer_ids=[str(survivor), str(duplicate)],
            trigger="order_placed",
            delay_days=3,
            subject="s",
            body="b",
        )
        placed = datetime.now(UTC)
        shared_order, own_order = order(survivor, placed), order(duplicate, placed)
        dup_of_shared = order(duplicate, placed, order_id=shared_order.order_id)
        await deliver(db, shared_order, dup_of_shared, own_order)

        await deliver(
            db,
            CustomerMerged(
                customer_id=survivor, merged_id=duplicate, merged_by="agent-1", merged_at=placed
            ),
        )

        rows = await messages(db, both)
        assert sorted(
            (m.customer_id == survivor, m.occurrence, m.status, m.skip_reason) for m in rows
        ) == sorted(
            [
                (True, f"order:{shared_order.order_id}", "deferred", None),
                (True, f"order:{own_order.order_id}", "deferred", None),
                (False, f"order:{shared_order.order_id}", "skipped", "merged"),
            ]
        )
        await cancel(client, both)

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


async def cancel(client: httpx.AsyncClient, campaign: dict[str, Any]) -> None:
    """Leave no started trigger or recurring campaign behind for other tests' senders."""
    response = await client.post(f"/campaigns/{campaign['id']}:cancel", headers=writer())
    assert response.status_code in (200, 409), response.text


def order(customer_id: uuid.UUID, placed_at: datetime, order_id: uuid.UUID | None = None) -> Any:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=order_id or uuid.uuid4(),
        total=Decimal("25.80"),
        currency="EUR",
        channel="web",
        placed_at=placed_at,
    )


class TestValidation:
    @pytest.mark.parametrize(
        ("fields", "detail"),
        [
            ({"trigger": "order_placed"}, "delay_days"),
            ({"trigger": "order_placed", "delay_days": 0}, "greater than or equal to 1"),
            ({"trigger": "order_placed", "delay_days": 366}, "less than or equal to 365"),
            ({"delay_days": 3}, "delay_days"),
            ({"rule_type": "birthday"}, "rule_type"),
            ({"trigger": "task_due", "rule_type": "anniversary"}, "birthday"),
            ({"recurrence": {"every_days": 7}}, "scheduled_at"),
            (
                {
                    "recurrence": {"every_days": 7},
                    "scheduled_at": "2027-01-01T09:00:00Z",
                    "trigger": "task_due",
                },
                "not both",
            ),
            (
                {"recurrence": {"every_days": 367}, "scheduled_at": "2027-01-01T09:00:00Z"},
                "less than or equal to 366",
            ),
            (
                {
                    "recurrence": {"every_days": 7, "until": "2026-12-01T00:00:00Z"},
                    "scheduled_at": "2027-01-01T09:00:00Z",
                },
                "before the first run",
            ),
        ],
    )
    async def test_refuses_inconsistent_schedules_and_triggers(
        self, client: httpx.AsyncClient, fields: dict[str, Any], detail: str
    ) -> None:
        body = {
            "name": "c",
            "channel": "sms",
            "customer_ids": [str(uuid.uuid4())],
            "body": "b",
            **fields,
        }
        response = await client.post("/campaigns", json=body, headers=writer())

        assert response.status_code == 422, response.text
        assert detail in response.text

    async def test_reads_back_trigger_delay_rule_type_and_recurrence(
        self, client: httpx.AsyncClient
    ) -> None:
        listed = [str(uuid.uuid4())]
        ordered = await create(
            client,
            channel="sms",
            customer_ids=listed,
            body="b",
            trigger="order_placed",
            delay_days=7,
        )
        tasked = await create(
            client,
            channel="sms",
            customer_ids=listed,
            body="b",
            trigger="task_due",
            rule_type="birthday",
        )
        recurring = await create(
            client,
            channel="sms",
            customer_ids=listed,
            body="b",
            scheduled_at="2027-01-01T09:00:00Z",
            recurrence={"every_days": 7, "until": "2027-03-01T00:00:00Z"},
        )

        assert (ordered["trigger"], ordered["delay_days"], ordered["recurrence"]) == (
            "order_placed",
            7,
            None,
        )
        assert (tasked["trigger"], tasked["rule_type"], tasked["delay_days"]) == (
            "task_due",
            "birthday",
            None,
        )
        assert recurring["recurrence"] == {"every_days": 7, "until": "2027-03-01T00:00:00Z"}


class TestOrderPlacedTrigger:
    async def test_sends_delay_days_after_each_order_once_per_order(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        smtp: SmtpServer,
        segmentation: FakeSegmentation,
    ) -> None:
        db = app.state.database
        segment = uuid.uuid4()
        segmentation.known.add(segment)
        ann_mail, out_mail = addr(), addr()
        ann = await seed_customer(
            db, "Ann Buyer", email_address=ann_mail, timezone="UTC", segment_id=segment
        )
        outsider = await seed_customer(db, "Out", email_address=out_mail, timezone="UTC")
        campaign = await create(
            client,
            channel="email",
            segment_id=str(segment),
            trigger="order_placed",
            delay_days=7,
            subject="How was it, {{ customer.first_name }}?",
            body="b",
        )
        started = (await start(client, campaign)).json()
        assert (started["campaign"]["status"], started["audience"]) == ("sending", 0)
        placed = datetime.now(UTC).replace(microsecond=0)
        first, second = order(ann, placed), order(ann, placed + timedelta(minutes=5))

        # A replayed event (redelivery) writes nothing more; an outsider's order nothing.
        await deliver(db, first, first, second, order(outsider, placed))

        rows = await messages(db, campaign)
        assert [(m.customer_id, m.status, m.occurrence, m.not_before) for m in rows] == [
            (ann, "deferred", f"order:{first.order_id}", placed + timedelta(days=7)),
            (
                ann,
                "deferred",
                f"order:{second.order_id}",
                placed + timedelta(days=7, minutes=5),
            ),
        ]
        await sender(app, settings, placed + timedelta(days=6)).run_once()
        assert smtp.inbox.to(ann_mail) == []

        # Both fall due: the cap (1 per 7 days) is judged then, so the second is capped.
        await sender(app, settings, placed + timedelta(days=7, minutes=6)).run_once()

        assert [r.subject for r in smtp.inbox.to(ann_mail)] == ["How was it, Ann?"]
        assert smtp.inbox.to(out_mail) == []
        rows = await messages(db, campaign)
        assert [(m.status, m.skip_reason) for m in rows] == [
            ("sent", None),
            ("skipped", "frequency-cap"),
        ]
        figures = await report(client, campaign)
        assert (figures["status"], figures["audience"], figures["sent"]) == ("sending", 2, 1)
        await cancel(client, campaign)

    async def test_a_listed_customer_without_consent_is_skipped_when_the_order_arrives(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        db = app.state.database
        quiet = await seed_customer(db, "No Mail", email_address=addr(), channels=())
        campaign = await started(
            client,
            channel="email",
            customer_ids=[str(quiet)],
            trigger="order_placed",
            delay_days=1,
            subject="s",
            body="b",
        )

        await deliver(db, order(quiet, datetime.now(UTC)))

        [message] = await messages(db, campaign)
        assert (message.status, message.skip_reason) == ("skipped", "no-consent")
        await cancel(client, campaign)


class TestTaskDueTrigger:
    async def test_a_due_task_sends_once_per_task_through_the_care_plan_scheduler(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        mail = addr()
        ann = await seed_customer(db, "Ann Task", email_address=mail, timezone="UTC")
        campaign = await started(
            client,
            channel="email",
            customer_ids=[str(ann)],
            trigger="task_due",
            subject="We have news, {{ customer.first_name }}",
            body="b",
        )
        birthday_only = await started(
            client,
            channel="email",
            customer_ids=[str(ann)],
            trigger="task_due",
            rule_type="birthday",
            subject="Happy birthday",
            body="b",
        )
        due_at = datetime.now(UTC) + timedelta(minutes=30)
        task = await client.post(
            "/tasks",
            json={"customer_id": str(ann), "title": "Call back", "due_at": due_at.isoformat()},
            headers=writer(),
        )
        assert task.status_code == 201, task.text

        scheduler = CarePlanScheduler(db, now=Clock(due_at + timedelta(minutes=1)))
        await scheduler.announce_due(due_at + timedelta(minutes=1))
        # The same task announced again (a replay) writes nothing more.
        async with db.session() as session:
            again = TaskDue(
                customer_id=ann,
                task_id=uuid.UUID(task.json()["id"]),
                title="Call back",
                due_at=due_at,
                source="manual",
            )
            assert await handlers.on_tasks_due(session, [again]) == 0

        [message] = await messages(db, campaign)
        assert (message.status, message.occurrence) == ("queued", f"task:{task.json()['id']}")
        assert await messages(db, birthday_only) == []  # a manual task has no rule type
        await sender(app, settings, due_at + timedelta(minutes=2)).run_once()
        assert [r.subject for r in smtp.inbox.to(mail)] == ["We have news, Ann"]
        for c in (campaign, birthday_only):
            await cancel(client, c)

    async def test_rule_type_picks_the_tasks_of_that_care_plan_rule_type(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        db = app.state.database
        ann = await seed_customer(
            db, "Ann", email_address=addr(), channels=("sms",), phone="+15550100"
        )
        birthday = await started(
            client,
            channel="sms",
            customer_ids=[str(ann)],
            trigger="task_due",
            rule_type="birthday",
            body="Happy birthday {{ customer.first_name }}",
        )
        revisit = await started(
            client,
            channel="sms",
            customer_ids=[str(ann)],
            trigger="task_due",
            rule_type="periodic_revisit",
            body="b",
        )
        due = TaskDue(
            customer_id=ann,
            task_id=uuid.uuid4(),
            title="Birthday greeting",
            due_at=datetime.now(UTC),
            source="care_plan",
            rule_id=uuid.uuid4(),
            rule_type="birthday",
        )

        async with db.session() as session:
            assert await handlers.on_tasks_due(session, [due, due]) == 1

        [message] = await messages(db, birthday)
        assert (message.status, message.occurrence, message.address) == (
            "queued",
            f"task:{due.task_id}",
            "+15550100",
        )
        assert await messages(db, revisit) == []
        for c in (birthday, revisit):
            await cancel(client, c)


class TestRecurring:
    async def test_each_run_sends_to_the_segment_as_it_is_then_until_the_last(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        smtp: SmtpServer,
        segmentation: FakeSegmentation,
    ) -> None:
        db = app.state.database
        segment = uuid.uuid4()
        segmentation.known.add(segment)
        ann_mail, bob_mail = addr(), addr()
        await seed_customer(db, "Ann", email_address=ann_mail, timezone="UTC", segment_id=segment)
        first = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        second = first + timedelta(days=8)  # past the 7-day cap window of the first
        campaign = await create(
            client,
            channel="email",
            segment_id=str(segment),
            subject="Picks for {{ customer.first_name }}",
            body="b",
            scheduled_at=first.isoformat(),
            recurrence={"every_days": 8, "until": (second + timedelta(hours=1)).isoformat()},
        )
        assert (await start(client, campaign)).json()["campaign"]["status"] == "scheduled"

        await sender(app, settings, first + timedelta(seconds=1)).run_once()

        between = (await client.get(f"/campaigns/{campaign['id']}", headers=writer())).json()
        assert (between["status"], between["scheduled_at"]) == (
            "scheduled",
            second.isoformat().replace("+00:00", "Z"),
        )
        assert [r.subject for r in smtp.inbox.to(ann_mail)] == ["Picks for Ann"]
        # Bob joins the segment between runs: the second run finds him.
        await seed_customer(db, "Bob", email_address=bob_mail, timezone="UTC", segment_id=segment)
        await sender(app, settings, second - timedelta(seconds=1)).run_once()
        assert len(smtp.inbox.to(ann_mail)) == 1

        await sender(app, settings, second + timedelta(seconds=1)).run_once()

        assert [r.subject for r in smtp.inbox.to(ann_mail)] == ["Picks for Ann"] * 2
        assert [r.subject for r in smtp.inbox.to(bob_mail)] == ["Picks for Bob"]
        rows = await messages(db, campaign)
        assert [(m.occurrence, m.status) for m in rows] == [
            (first.isoformat(), "sent"),
            (second.isoformat(), "sent"),
            (second.isoformat(), "sent"),
        ]
        figures = await report(client, campaign)
        assert (figures["status"], figures["audience"], figures["sent"]) == ("completed", 3, 3)

    async def test_runs_missed_while_down_are_not_replayed(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        mail = addr()
        ann = await seed_customer(db, "Ann", email_address=mail, timezone="UTC")
        first = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        campaign = await started(
            client,
            channel="email",
            customer_ids=[str(ann)],
            subject="daily",
            body="b",
            scheduled_at=first.isoformat(),
            recurrence={"every_days": 1},
        )

        # The sender was down for three and a half days: one run, the next one ahead.
        back = first + timedelta(days=3, hours=12)
        await sender(app, settings, back).run_once()

        after = (await client.get(f"/campaigns/{campaign['id']}", headers=writer())).json()
        assert (after["status"], after["scheduled_at"]) == (
            "scheduled",
            (first + timedelta(days=4)).isoformat().replace("+00:00", "Z"),
        )
        assert [m.occurrence for m in await messages(db, campaign)] == [first.isoformat()]
        assert len(smtp.inbox.to(mail)) == 1
        await cancel(client, campaign)


class TestUnknownSegment:
    async def test_a_segment_segmentation_does_not_know_is_refused_at_create(
        self, client: httpx.AsyncClient, app: FastAPI, segmentation: FakeSegmentation
    ) -> None:
        unknown = uuid.uuid4()
        name = f"unknown-{unknown}"
        body = {"name": name, "channel": "sms", "segment_id": str(unknown), "body": "b"}

        response = await client.post("/campaigns", json=body, headers=writer())

        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("/unknown-segment")
        assert problem["errors"] == [{"pointer": "/body/segment_id", "detail": "unknown segment"}]
        assert segmentation.calls[-1][0] == str(unknown)
        assert segmentation.calls[-1][1].startswith("Bearer ")  # an internal token
        assert await campaigns_named(app.state.database, name) == 0

    async def test_a_replace_naming_an_unknown_segment_is_refused_and_changes_nothing(
        self, client: httpx.AsyncClient, segmentation: FakeSegmentation
    ) -> None:
        known = uuid.uuid4()
        segmentation.known.add(known)
        campaign = await create(client, channel="sms", segment_id=str(known), body="b")

        response = await client.put(
            f"/campaigns/{campaign['id']}",
            json={"name": "c", "channel": "sms", "segment_id": str(uuid.uuid4()), "body": "x"},
            headers=writer(),
        )

        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/unknown-segment")
        read = (await client.get(f"/campaigns/{campaign['id']}", headers=writer())).json()
        assert (read["segment_id"], read["body"], read["version"]) == (str(known), "b", 1)

    async def test_an_existing_empty_segment_is_accepted_and_its_start_reports_no_audience(
        self, client: httpx.AsyncClient, segmentation: FakeSegmentation
    ) -> None:
        empty = uuid.uuid4()
        segmentation.known.add(empty)
        campaign = await create(client, channel="sms", segment_id=str(empty), body="b")

        started = await start(client, campaign)

        assert started.status_code == 422, started.text
        assert (started.json()["type"].split("/")[-1], started.json()["audience"]) == (
            "empty-audience",
            0,
        )

    async def test_segmentation_down_is_a_503_and_nothing_is_created(
        self, client: httpx.AsyncClient, app: FastAPI, segmentation: FakeSegmentation
    ) -> None:
        segment = uuid.uuid4()
        segmentation.known.add(segment)
        name = f"down-{segment}"
        segmentation.down = True
        try:
            response = await client.post(
                "/campaigns",
                json={"name": name, "channel": "sms", "segment_id": str(segment), "body": "b"},
                headers={**writer(), "Idempotency-Key": f"k-{segment}"},
            )
        finally:
            segmentation.down = False

        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "5"
        assert await campaigns_named(app.state.database, name) == 0
        # The same key works once segmentation is back (the failed try kept nothing).
        again = await client.post(
            "/campaigns",
            json={"name": name, "channel": "sms", "segment_id": str(segment), "body": "b"},
            headers={**writer(), "Idempotency-Key": f"k-{segment}"},
        )
        assert (again.status_code, again.json()["name"]) == (201, name)


class TestSegmentationContract:
    async def test_segmentation_itself_answers_the_check_with_an_internal_token(
        self, make_settings: Any, settings: Settings
    ) -> None:
        """The real segmentation app (in process): an existing, empty segment passes; an id
        it does not know is ``UnknownSegment``."""
        segmentation_app = create_segmentation_app(
            make_settings(SegmentationSettings, membership_scheduler_enabled=False)
        )
        async with api_client(segmentation_app) as seg:
            created = await seg.post(
                "/segments",
                json={
                    "name": "nobody yet",
                    "rule": {"field": "tags", "op": "contains", "value": f"t-{uuid.uuid4()}"},
                },
                headers=bearer("segments:read", "segments:write"),
            )
            assert created.status_code == 201, created.text
            directory = SegmentDirectory(
                "http://test",
                settings.internal_token_secret,
                transport=httpx.ASGITransport(app=segmentation_app),
            )
            try:
                await directory.check(uuid.UUID(created.json()["id"]))
                with pytest.raises(UnknownSegment):
                    await directory.check(uuid.uuid4())
            finally:
                await directory.close()
