import asyncio
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
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from services.interactions.campaign.repository import CampaignRepository, Claimed
from services.interactions.campaign.sender import CampaignSender
from services.interactions.campaign.service import quiet_hours
from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import CampaignMessage, Interaction
from shared.errors import PROBLEM_JSON
from shared.events import CustomerConsentChanged, OrderPlaced, SegmentEntered, SegmentExited
from tests.services.interactions.campaign_support import (
    QUIET_END,
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
from tests.services.interactions.careplan_support import Clock, deliver, outbox_events
from tests.support import api_client, bearer, until_a_backend_waits_for_a_lock

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def settings(make_settings: Any, smtp: SmtpServer) -> Settings:
    return campaign_settings(make_settings, smtp, campaign_retry_backoff_s=60)


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    FakeSegmentation(everything=True).install(app)  # segments here exist
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


class TestCampaignApi:
    async def test_creates_reads_replaces_with_if_match_and_lists(
        self, client: httpx.AsyncClient
    ) -> None:
        segment = uuid.uuid4()
        created = await create(
            client,
            channel="email",
            segment_id=str(segment),
            subject="Hi {{ customer.first_name }}",
            body="Hello {{ customer.display_name }}",
        )
        assert (created["status"], created["version"], created["segment_id"]) == (
            "draft",
            1,
            str(segment),
        )
        read = await client.get(f"/campaigns/{created['id']}", headers=writer())
        assert read.headers["etag"] == '"1"'

        replaced = await client.put(
            f"/campaigns/{created['id']}",
            json={"name": "v2", "channel": "sms", "customer_ids": [str(uuid.uuid4())], "body": "x"},
            headers={**writer(), "If-Match": '"1"'},
        )
        assert replaced.status_code == 200, replaced.text
        assert (
            replaced.json()["name"],
            replaced.json()["segment_id"],
            replaced.json()["version"],
        ) == (
            "v2",
            None,
            2,
        )
        stale = await client.put(
            f"/campaigns/{created['id']}",
            json={"name": "v3", "channel": "sms", "customer_ids": [str(uuid.uuid4())], "body": "x"},
            headers={**writer(), "If-Match": '"1"'},
        )
        assert stale.status_code == 412
        listed = await client.get("/campaigns", params={"status": "draft"}, headers=writer())
        assert created["id"] in [c["id"] for c in listed.json()["items"]]

    async def test_only_a_caller_who_sees_every_customer_writes_campaigns(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create(client, channel="sms", customer_ids=[str(uuid.uuid4())], body="x")
        rep = bearer("interactions:read", "interactions:write", scope_mode="team", team="north")
        body = {"name": "mine", "channel": "sms", "customer_ids": [str(uuid.uuid4())], "body": "x"}
        answers = [
            await client.post("/campaigns", json=body, headers=rep),
            await client.put(f"/campaigns/{created['id']}", json=body, headers=rep),
            await client.post(f"/campaigns/{created['id']}:start", headers=rep),
        ]
        assert [a.status_code for a in answers] == [403, 403, 403]
        assert answers[0].json()["detail"] == (
            "campaigns reach customers beyond your data scope (team); creating, changing or "
            "starting one needs the data scope 'all'"
        )
        read = await client.get(f"/campaigns/{created['id']}", headers=rep)
        assert (read.status_code, read.json()["status"], read.json()["version"]) == (
            200,
            "draft",
            1,
        )

    async def test_a_retried_create_with_the_same_idempotency_key_creates_once(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {"name": "once", "channel": "sms", "customer_ids": [str(uuid.uuid4())], "body": "x"}
        headers = {**writer(), "Idempotency-Key": str(uuid.uuid4())}
        first = await client.post("/campaigns", json=body, headers=headers)
        second = await client.post("/campaigns", json=body, headers=headers)
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.json()["id"] == first.json()["id"]
        assert second.headers["idempotent-replayed"] == "true"

    async def test_refuses_unknown_fields_and_syntax_errors_with_their_position(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/campaigns",
            json={
                "name": "bad",
                "channel": "email",
                "customer_ids": [str(uuid.uuid4())],
                "subject": "Hi {{ customer.first_name }",
                "body": "Dear {{ customer.display_name }},\nyour {{ customer.shoe_size }} is in",
            },
            headers=writer(),
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["type"] == "/problems/invalid-template"
        errors = {e["pointer"]: e for e in problem["errors"]}
        assert errors["/body/subject"]["line"] == 1
        assert "syntax error" in errors["/body/subject"]["detail"]
        assert (errors["/body/body"]["line"], errors["/body/body"]["column"]) == (2, 9)
        assert "customer.shoe_size" in errors["/body/body"]["detail"]

    async def test_refuses_unknown_variables_and_sandbox_escapes(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/campaigns",
            json={
                "name": "bad",
                "channel": "sms",
                "customer_ids": [str(uuid.uuid4())],
                "body": "{{ secret }} {{ customer.__class__ }}",
            },
            headers=writer(),
        )
        assert response.status_code == 422
        details = [e["detail"] for e in response.json()["errors"]]
        assert any("'secret'" in d for d in details)
        assert any("customer.__class__" in d for d in details)

    async def test_an_empty_audience_is_refused_and_nothing_is_written(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        campaign = await create(
            client, channel="email", segment_id=str(uuid.uuid4()), subject="s", body="b"
        )
        response = await start(client, campaign)
        assert response.status_code == 422
        assert response.json()["type"] == "/problems/empty-audience"
        again = await client.get(f"/campaigns/{campaign['id']}", headers=writer())
        assert again.json()["status"] == "draft"

    async def test_an_audience_without_consent_is_refused_with_counts(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        segment = uuid.uuid4()
        db = app.state.database
        await seed_customer(db, "No Consent", email_address=addr(), channels=(), segment_id=segment)
        await seed_customer(
            db, "Sms Only", email_address=addr(), channels=("sms",), segment_id=segment
        )
        await seed_customer(db, "No Address", channels=("email",), segment_id=segment)
        campaign = await create(
            client, channel="email", segment_id=str(segment), subject="s", body="b"
        )

        response = await start(client, campaign)

        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["type"] == "/problems/no-reachable-recipient"
        assert (problem["audience"], problem["skipped"]) == (
            3,
            {"no-consent": 2, "no-address": 1},
        )
        figures = await report(client, campaign)
        assert (figures["audience"], figures["sent"]) == (0, 0)

    async def test_a_sending_campaign_cannot_be_edited(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        someone = await seed_customer(app.state.database, "Ann Lee", email_address=addr())
        campaign = await create(
            client, channel="email", customer_ids=[str(someone)], subject="s", body="b"
        )
        started = await start(client, campaign)
        assert started.status_code == 200, started.text
        response = await client.put(
            f"/campaigns/{campaign['id']}",
            json={"name": "x", "channel": "sms", "customer_ids": [str(someone)], "body": "x"},
            headers=writer(),
        )
        assert response.status_code == 409
        assert response.json()["type"] == "/problems/campaign-not-editable"
        again = await start(client, campaign)
        assert again.status_code == 409

    async def test_previews_the_message_for_one_customer(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        ann = await seed_customer(
            app.state.database,
            "Ann Lee",
            email_address="ann@example.com",
            custom_fields={"tier": "gold"},
        )
        nameless = await seed_customer(app.state.database, "", email_address=addr())
        campaign = await create(
            client,
            channel="email",
            customer_ids=[str(ann)],
            subject="{{ customer.first_name | default('Friend') }}, a gift",
            body="Tier: {{ customer.custom_fields.tier }}/{{ customer.custom_fields.none }}/"
            "{{ customer.locale }}/{{ customer.email }}",
        )
        url = f"/campaigns/{campaign['id']}:preview"
        response = await client.post(url, json={"customer_id": str(ann)}, headers=writer())
        assert response.status_code == 200, response.text
        assert response.json()["subject"] == "Ann, a gift"
        assert response.json()["body"] == "Tier: gold///ann@example.com"
        plain = await client.post(url, json={"customer_id": str(nameless)}, headers=writer())
        assert plain.json()["subject"] == "Friend, a gift"
        unknown = await client.post(url, json={"customer_id": str(uuid.uuid4())}, headers=writer())
        assert unknown.status_code == 404


class TestSending:
    async def test_sends_personalised_mail_to_the_consented_members_of_a_segment(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        segment = uuid.uuid4()
        ann_mail, bob_mail, eve_mail = addr(), addr(), addr()
        ann = await seed_customer(
            db,
            "Ann Lee",
            email_address=ann_mail,
            segment_id=segment,
            custom_fields={"tier": "gold"},
        )
        bob = await seed_customer(db, "Bob", email_address=bob_mail, segment_id=segment)
        eve = await seed_customer(
            db, "Eve Unsubscribed", email_address=eve_mail, channels=(), segment_id=segment
        )
        outsider = addr()
        await seed_customer(db, "Not In Segment", email_address=outsider)
        campaign = await create(
            client,
            name="Gold week",
            channel="email",
            segment_id=str(segment),
            subject="{{ customer.first_name }}, {{ campaign.name }}",
            body="Dear {{ customer.display_name }},\n"
            "{% if customer.custom_fields.tier %}Your tier: {{ customer.custom_fields.tier }}"
            "{% else %}Join our club{% endif %}.\n",
        )

        started = await start(client, campaign)
        assert started.status_code == 200, started.text
        assert (
            started.json()["audience"],
            started.json()["queued"],
            started.json()["skipped"],
        ) == (
            3,
            2,
            {"no-consent": 1},
        )
        assert await sender(app, settings).run_once() == 2

        [to_ann] = smtp.inbox.to(ann_mail)
        [to_bob] = smtp.inbox.to(bob_mail)
        assert smtp.inbox.to(eve_mail) == []
        assert smtp.inbox.to(outsider) == []
        assert (to_ann.subject, to_ann.body) == (
            "Ann, Gold week",
            "Dear Ann Lee,\nYour tier: gold.\n",
        )
        assert (to_bob.subject, to_bob.body) == ("Bob, Gold week", "Dear Bob,\nJoin our club.\n")
        async with db.session() as session:
            messages = {
                m.customer_id: m
                for m in await session.scalars(
                    select(CampaignMessage).where(
                        CampaignMessage.campaign_id == uuid.UUID(campaign["id"])
                    )
                )
            }
            assert to_ann.message_id == f"<{messages[ann].id}@rapport.invalid>"
            assert (messages[ann].status, messages[bob].status, messages[eve].status) == (
                "sent",
                "sent",
                "skipped",
            )
            # The 360 timeline learns of it: an outbound interaction and its event.
            interaction = await session.get(Interaction, messages[ann].interaction_id)
            assert interaction is not None
            assert (interaction.channel, interaction.kind, interaction.direction) == (
                "email",
                "message",
                "outbound",
            )
            assert interaction.subject == "Ann, Gold week"
            assert interaction.details["campaign_id"] == campaign["id"]
        [event] = await outbox_events(db, str(ann), "rapport.interaction.recorded.v1")
        assert (event["interaction_id"], event["direction"]) == (
            str(messages[ann].interaction_id),
            "outbound",
        )

        assert await sender(app, settings).run_once() == 0  # nothing twice
        figures = await report(client, campaign)
        assert (figures["status"], figures["audience"], figures["sent"], figures["skipped"]) == (
            "completed",
            3,
            2,
            {
                "no-consent": 1,
                "no-address": 0,
                "frequency-cap": 0,
                "cancelled": 0,
                "erased": 0,
                "merged": 0,
            },
        )

    async def test_a_consent_withdrawn_after_the_start_stops_the_message(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        mail = addr()
        ann = await seed_customer(db, "Ann", email_address=mail)
        campaign = await started(
            client, channel="email", customer_ids=[str(ann)], subject="s", body="b"
        )
        await deliver(
            db,
            CustomerConsentChanged(
                customer_id=ann, channel="email", granted=False, changed_at=datetime.now(UTC)
            ),
        )

        assert await sender(app, settings).run_once() == 0

        assert smtp.inbox.to(mail) == []
        assert (await report(client, campaign))["skipped"]["no-consent"] == 1

    async def test_the_frequency_cap_counts_messages_of_other_campaigns(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        ann_mail, bob_mail = addr(), addr()
        ann = await seed_customer(db, "Ann", email_address=ann_mail)
        bob = await seed_customer(db, "Bob", email_address=bob_mail)
        await started(client, channel="email", customer_ids=[str(ann)], subject="1", body="b")
        await sender(app, settings).run_once()

        second = await create(
            client, channel="email", customer_ids=[str(ann), str(bob)], subject="2", body="b"
        )
        second_start = await start(client, second)
        assert second_start.json()["skipped"] == {"frequency-cap": 1}
        await sender(app, settings).run_once()

        assert [r.subject for r in smtp.inbox.to(ann_mail)] == ["1"]  # cap: 1 per 7 days
        assert [r.subject for r in smtp.inbox.to(bob_mail)] == ["2"]

    async def test_two_senders_claiming_one_customers_messages_at_once_keep_the_cap(
        self, make_settings: Any, smtp: SmtpServer
    ) -> None:
        # Two campaigns started together each queued a message for Ann (the cap at start
        # counts only what is committed). Two senders claim both at the same instant: the
        # second waits for the first's claim to commit, then counts its message.
        settings = campaign_settings(
            make_settings,
            smtp,
            campaign_frequency_cap=10,
            campaign_quiet_start="00:00",
            campaign_quiet_end="00:00",  # no quiet hours
        )
        app = create_app(settings)
        FakeSegmentation(everything=True).install(app)
        async with api_client(app, rollback=False) as client:
            db = app.state.database
            ann = await seed_customer(db, "Ann", email_address=addr())
            for subject in ("first", "second"):
                campaign = await create(
                    client, channel="email", customer_ids=[str(ann)], subject=subject, body="b"
                )
                assert (await start(client, campaign)).json()["queued"] == 1
            # Due long ago, so that only these two are due at the claims' instant.
            at = datetime(2001, 1, 1, tzinfo=UTC)
            async with db.session() as session:
                await session.execute(
                    update(CampaignMessage)
                    .where(CampaignMessage.customer_id == ann)
                    .values(not_before=at)
                )

            async def claim(session: AsyncSession) -> list[Claimed]:
                return await CampaignRepository(session).claim(
                    at, 60, cap=1, days=7, quiet=quiet_hours(settings)
                )

            async def claim_alone() -> list[Claimed]:
                async with db.session() as session:
                    return await claim(session)

            async with db.session() as session:
                first = await claim(session)
                second = asyncio.create_task(claim_alone())
                await until_a_backend_waits_for_a_lock(db)
            [other] = await second

        assert [m.status for m in first] == ["sending"]
        assert (other.status, other.customer_id) == ("skipped", ann)
        async with db.session() as session:
            reasons = (
                await session.scalars(
                    select(CampaignMessage.skip_reason).where(CampaignMessage.customer_id == ann)
                )
            ).all()
        assert sorted(reasons, key=str) == [None, "frequency-cap"]

    async def test_quiet_hours_defer_to_their_end_in_the_customers_timezone(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        night_mail, day_mail = addr(), addr()
        night = await seed_customer(db, "Night Owl", email_address=night_mail, timezone=QUIET_TZ)
        day = await seed_customer(db, "Day", email_address=day_mail, timezone="UTC")
        campaign = await create(
            client, channel="email", customer_ids=[str(night), str(day)], subject="s", body="b"
        )
        started = await start(client, campaign)
        assert (started.json()["queued"], started.json()["deferred"]) == (1, 1)

        now = datetime.now(UTC)
        assert await sender(app, settings, now).run_once() == 1
        assert (len(smtp.inbox.to(night_mail)), len(smtp.inbox.to(day_mail))) == (0, 1)
        async with db.session() as session:
            deferred = (
                await session.scalars(
                    select(CampaignMessage).where(CampaignMessage.customer_id == night)
                )
            ).one()
        local = now.astimezone(ZoneInfo(QUIET_TZ))
        end_day = local.date() + timedelta(days=0 if local.time() < QUIET_END else 1)
        expected = datetime.combine(end_day, QUIET_END, tzinfo=ZoneInfo(QUIET_TZ))
        assert (deferred.status, deferred.not_before) == ("deferred", expected)

        assert await sender(app, settings, expected + timedelta(seconds=1)).run_once() == 1
        assert len(smtp.inbox.to(night_mail)) == 1


class TestReport:
    async def test_attributes_orders_placed_within_the_window_with_revenue(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        db = app.state.database
        ann = await seed_customer(db, "Ann", email_address=addr())
        campaign = await started(
            client, channel="email", customer_ids=[str(ann)], subject="s", body="b"
        )
        sent_at = datetime.now(UTC)
        await sender(app, settings, sent_at).run_once()
        for days, total in ((-1, "5.00"), (2, "19.90"), (3, "0.10"), (9, "100.00")):
            await deliver(
                db,
                OrderPlaced(
                    customer_id=ann,
                    order_id=uuid.uuid4(),
                    total=Decimal(total),
                    currency="EUR",
                    channel="web",
                    placed_at=sent_at + timedelta(days=days),
                ),
            )

        figures = await report(client, campaign, attribution_days=7)

        assert figures["orders"] == [{"currency": "EUR", "orders": 2, "revenue": "20.0000"}]
        assert (figures["audience"], figures["sent"], figures["unconfirmed"]) == (1, 1, 0)


class TestDeliveryFailures:
    async def test_a_temporary_refusal_is_retried_with_backoff_and_a_permanent_one_fails(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        busy, gone = addr(), addr()
        busy_id = await seed_customer(db, "Busy", email_address=busy)
        gone_id = await seed_customer(db, "Gone", email_address=gone)
        smtp.inbox.refuse = {
            busy: "451 4.2.1 mailbox busy, try later",
            gone: "550 5.1.1 no such user",
        }
        campaign = await started(
            client,
            channel="email",
            customer_ids=[str(busy_id), str(gone_id)],
            subject="s",
            body="b",
        )
        now = datetime.now(UTC)
        try:
            assert await sender(app, settings, now).run_once() == 0
            async with db.session() as session:
                rows = {
                    m.customer_id: m
                    for m in await session.scalars(
                        select(CampaignMessage).where(
                            CampaignMessage.campaign_id == uuid.UUID(campaign["id"])
                        )
                    )
                }
            retry, failed = rows[busy_id], rows[gone_id]
            assert (retry.status, retry.attempts) == ("queued", 1)
            assert retry.not_before == now + timedelta(seconds=settings.campaign_retry_backoff_s)
            assert "451" in (retry.last_error or "")
            assert (failed.status, failed.attempts) == ("failed", 1)
            assert "550" in (failed.last_error or "")
            # Not before the backoff; then delivered once the server takes it.
            assert await sender(app, settings, now + timedelta(seconds=30)).run_once() == 0
            del smtp.inbox.refuse[busy]
            assert await sender(app, settings, now + timedelta(seconds=61)).run_once() == 1
        finally:
            smtp.inbox.refuse = {}
        assert len(smtp.inbox.to(busy)) == 1
        assert smtp.inbox.to(gone) == []
        figures = await report(client, campaign)
        assert (figures["status"], figures["sent"], figures["failed"]) == ("completed", 1, 1)

    async def test_sms_goes_to_the_provider_signed_with_standard_webhooks(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        secret = settings.campaign_provider_secret
        posted: list[httpx.Request] = []
        answers = iter([httpx.Response(503), httpx.Response(202)])

        def provider(request: httpx.Request) -> httpx.Response:
            posted.append(request)
            return next(answers)

        ann = await seed_customer(
            app.state.database, "Ann Lee", phone="+4915112345678", channels=("sms",)
        )
        await started(
            client, channel="sms", customer_ids=[str(ann)], body="Hi {{ customer.first_name }}!"
        )
        http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
        sms = settings.model_copy(update={"campaign_provider_url": "https://sms.example/send"})
        now = datetime.now(UTC)
        try:
            first = CampaignSender(app.state.database, sms, now=Clock(now), http=http)
            assert await first.run_once() == 0  # 503: temporary, retried later
            later = Clock(now + timedelta(seconds=sms.campaign_retry_backoff_s + 1))
            assert (
                await CampaignSender(app.state.database, sms, now=later, http=http).run_once() == 1
            )
        finally:
            await http.aclose()

        assert [r.url for r in posted] == ["https://sms.example/send"] * 2
        request = posted[-1]
        payload = Webhook(secret).verify(request.content, dict(request.headers))
        assert (payload["to"], payload["body"], payload["channel"]) == (
            "+4915112345678",
            "Hi Ann!",
            "sms",
        )
        assert request.headers["webhook-id"] == payload["id"]
        async with app.state.database.session() as session:
            message = await session.get(CampaignMessage, uuid.UUID(payload["id"]))
            assert message is not None
            interaction = await session.get(Interaction, message.interaction_id)
        assert interaction is not None
        assert (interaction.channel, interaction.direction, interaction.summary) == (
            "sms",
            "outbound",
            "Hi Ann!",
        )


class TestScheduling:
    async def test_a_scheduled_campaign_starts_and_sends_when_its_time_comes(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        mail = addr()
        ann = await seed_customer(app.state.database, "Ann", email_address=mail)
        at = datetime.now(UTC) + timedelta(hours=1)
        campaign = await create(
            client,
            channel="email",
            customer_ids=[str(ann)],
            subject="later",
            body="b",
            scheduled_at=at.isoformat(),
        )
        started = await start(client, campaign)
        assert (started.json()["campaign"]["status"], started.json()["audience"]) == (
            "scheduled",
            0,
        )

        assert await sender(app, settings, at - timedelta(minutes=1)).run_once() == 0
        assert smtp.inbox.to(mail) == []
        assert await sender(app, settings, at + timedelta(seconds=1)).run_once() == 1

        assert [r.subject for r in smtp.inbox.to(mail)] == ["later"]
        figures = await report(client, campaign)
        assert (figures["status"], figures["sent"]) == ("completed", 1)

    async def test_a_scheduled_campaign_with_nobody_to_send_to_ends_without_sending(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        at = datetime.now(UTC) + timedelta(hours=1)
        campaign = await started(
            client,
            channel="email",
            segment_id=str(uuid.uuid4()),
            subject="s",
            body="b",
            scheduled_at=at.isoformat(),
        )

        assert await sender(app, settings, at + timedelta(seconds=1)).run_once() == 0

        figures = await report(client, campaign)
        assert (figures["status"], figures["audience"]) == ("completed", 0)

    async def test_a_cancelled_campaign_sends_nothing_more(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        mail = addr()
        ann = await seed_customer(app.state.database, "Ann", email_address=mail)
        campaign = await started(
            client, channel="email", customer_ids=[str(ann)], subject="s", body="b"
        )
        cancelled = await client.post(f"/campaigns/{campaign['id']}:cancel", headers=writer())
        assert cancelled.json()["status"] == "cancelled"

        assert await sender(app, settings).run_once() == 0

        assert smtp.inbox.to(mail) == []
        again = await client.post(f"/campaigns/{campaign['id']}:cancel", headers=writer())
        assert again.status_code == 409

    async def test_a_segment_entered_campaign_greets_each_new_member_once(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        db = app.state.database
        segment = uuid.uuid4()
        already = addr()
        await seed_customer(db, "Old Member", email_address=already, segment_id=segment)
        campaign = await create(
            client,
            channel="email",
            segment_id=str(segment),
            trigger="segment_entered",
            subject="Welcome, {{ customer.first_name }}",
            body="b",
        )
        started = await start(client, campaign)
        assert (started.json()["campaign"]["status"], started.json()["audience"]) == ("sending", 0)
        newcomer_mail, refused_mail = addr(), addr()
        newcomer = await seed_customer(db, "New Member", email_address=newcomer_mail)
        refused = await seed_customer(db, "No Consent", email_address=refused_mail, channels=())

        entered = datetime.now(UTC)
        for customer_id in (newcomer, refused):
            await deliver(
                db, SegmentEntered(customer_id=customer_id, segment_id=segment, entered_at=entered)
            )
        assert await sender(app, settings).run_once() == 1
        # Leaving and entering again sends nothing new.
        await deliver(
            db,
            SegmentExited(customer_id=newcomer, segment_id=segment, exited_at=entered),
            SegmentEntered(customer_id=newcomer, segment_id=segment, entered_at=entered),
        )
        assert await sender(app, settings).run_once() == 0

        assert [r.subject for r in smtp.inbox.to(newcomer_mail)] == ["Welcome, New"]
        assert smtp.inbox.to(already) == []
        assert smtp.inbox.to(refused_mail) == []
        figures = await report(client, campaign)
        assert (figures["status"], figures["audience"], figures["sent"]) == ("sending", 2, 1)
        assert figures["skipped"]["no-consent"] == 1
