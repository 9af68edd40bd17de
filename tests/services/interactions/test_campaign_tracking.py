import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from services.interactions.campaign.sender import CampaignSender
from services.interactions.campaign.tracking import Link, Tracker
from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import CampaignMessage, Interaction
from services.interactions.subscriptions import subscriptions
from shared.events import Envelope, WebhookReceived, webhook_key
from tests.services.interactions.campaign_support import SmtpServer, seed_customer
from tests.services.interactions.careplan_support import Clock
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASE = "http://gateway.test/api/v1/campaign-links"
SECRET = "a-test-tracking-secret-of-some-length"
LINK = re.compile(re.escape(BASE) + r"/([A-Za-z0-9_-]+)")


class Customer360:
    """customer360's consent endpoint, faked with httpx.MockTransport: records each PATCH."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any], str]] = []
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        self.patches.append(
            (request.url.path, json.loads(request.content), request.headers["content-type"])
        )
        return httpx.Response(200, json={})


@pytest.fixture(scope="module")
def settings(make_settings: Any, smtp: SmtpServer) -> Settings:
    return make_settings(  # type: ignore[no-any-return]
        Settings,
        sla_scheduler_enabled=False,
        care_plan_scheduler_enabled=False,
        campaign_sender_concurrency=1,
        smtp_port=smtp.port,
        campaign_quiet_start="00:00",
        campaign_quiet_end="00:00",
        campaign_tracking_base_url=BASE,
        campaign_tracking_secret=SECRET,
    )


@pytest.fixture
def customer360() -> Customer360:
    return Customer360()


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings, customer360: Customer360) -> FastAPI:
    app = create_app(settings)
    app.state.campaign_consent.transport = httpx.MockTransport(customer360.handle)
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def writer() -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii")


async def send_one(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer, body: str
) -> tuple[uuid.UUID, str, Any]:
    """A campaign to one new consented customer, sent; returns (customer, address, mail)."""
    address = f"{uuid.uuid4().hex[:10]}@example.com"
    customer = await seed_customer(app.state.database, "Ann Lee", email_address=address)
    created = await client.post(
        "/campaigns",
        json={
            "name": "Sale",
            "channel": "email",
            "customer_ids": [str(customer)],
            "subject": "Sale",
            "body": body,
        },
        headers=writer(),
    )
    campaign = created.json()
    assert (
        await client.post(f"/campaigns/{campaign['id']}:start", headers=writer())
    ).status_code == 200
    sender = CampaignSender(
        app.state.database,
        settings,
        now=Clock(datetime.now(UTC)),
        consent=app.state.campaign_consent,
    )
    assert await sender.run_once() == 1
    [mail] = smtp.inbox.to(address)
    return customer, campaign["id"], mail


async def report(client: httpx.AsyncClient, campaign_id: str) -> Any:
    return (await client.get(f"/campaigns/{campaign_id}/report", headers=writer())).json()


class TestTrackingLinks:
    async def test_links_in_the_mail_are_signed_and_tracked(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        customer, campaign_id, mail = await send_one(
            client, app, settings, smtp, "Hi {{ customer.first_name }}: https://shop.example/sale"
        )
        text = mail.body
        assert "https://shop.example/sale" not in text  # replaced by its tracked link
        [click_token, unsubscribe_token] = LINK.findall(text)
        assert mail.message["List-Unsubscribe"] == f"<{BASE}/{unsubscribe_token}>"
        assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        [open_token] = re.findall(r'<img src="' + re.escape(BASE) + r'/([^"]+)"', mail.part("html"))

        pixel = await client.get(f"/campaign-links/{open_token}")
        assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")
        click = await client.get(f"/campaign-links/{click_token}")
        assert (click.status_code, click.headers["location"]) == (302, "https://shop.example/sale")
        again = await client.get(f"/campaign-links/{click_token}")
        assert again.status_code == 302

        figures = await report(client, campaign_id)
        assert (figures["sent"], figures["opened"], figures["clicked"]) == (1, 1, 1)
        async with app.state.database.session() as session:
            kinds = sorted(
                (i.kind, i.details.get("url"))
                for i in await session.scalars(
                    select(Interaction).where(
                        Interaction.customer_id == customer, Interaction.source == "campaign"
                    )
                )
            )
        assert kinds == [
            ("email_clicked", "https://shop.example/sale"),
            ("email_opened", None),
            ("message", None),
        ]

    async def test_forged_links_and_urls_outside_the_template_are_404(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        _, _, mail = await send_one(client, app, settings, smtp, "Go: https://shop.example/")
        [click_token, _] = LINK.findall(mail.body)
        message_id = Tracker(BASE, SECRET).verify(click_token).message_id
        forged = click_token[:-2] + ("AA" if not click_token.endswith("AA") else "BB")
        other_secret = Tracker(BASE, "another-secret-another-secret-xx").token(
            Link(message_id, "click", 0)
        )
        beyond = Tracker(BASE, SECRET).token(Link(message_id, "click", 1))
        for token in (forged, other_secret, beyond, "not-a-token"):
            response = await client.get(f"/campaign-links/{token}")
            assert response.status_code == 404, token
            assert response.json()["type"] == "/problems/not-found"

    async def test_unsubscribing_withdraws_consent_here_and_in_customer360(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        smtp: SmtpServer,
        customer360: Customer360,
    ) -> None:
        customer, campaign_id, mail = await send_one(
            client, app, settings, smtp, "News. Leave: {{ unsubscribe_url }}"
        )
        [token] = LINK.findall(mail.body)
        page = await client.get(f"/campaign-links/{token}")
        assert page.status_code == 200
        assert '<form method="post"' in page.text
        assert customer360.patches == []  # a link scanner's GET changes nothing

        done = await client.post(f"/campaign-links/{token}")

        assert done.status_code == 200
        assert customer360.patches == [
            (
                f"/customers/{customer}",
                {"consent": {"email": {"granted": False, "source": "unsubscribe"}}},
                "application/merge-patch+json",
            )
        ]
        assert (await report(client, campaign_id))["unsubscribed"] == 1
        # Nothing more is sent to them, before customer360's event even arrives.
        second = await client.post(
            "/campaigns",
            json={
                "name": "Next",
                "channel": "email",
                "customer_ids": [str(customer)],
                "subject": "s",
                "body": "b",
            },
            headers=writer(),
        )
        refused = await client.post(f"/campaigns/{second.json()['id']}:start", headers=writer())
        assert refused.status_code == 409
        assert refused.json()["skipped"] == {"no-consent": 1}

    async def test_an_unsubscribe_customer360_missed_is_retried_by_the_sender(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        smtp: SmtpServer,
        customer360: Customer360,
    ) -> None:
        customer, _, mail = await send_one(client, app, settings, smtp, "News")
        [token] = LINK.findall(mail.body)
        customer360.down = True
        assert (await client.post(f"/campaign-links/{token}")).status_code == 200
        message_id = Tracker(BASE, SECRET).verify(token).message_id
        async with app.state.database.session() as session:
            message = await session.get(CampaignMessage, message_id)
            assert message is not None
            assert (message.unsubscribed_at is not None, message.consent_synced_at) == (True, None)

        customer360.down = False
        sender = CampaignSender(app.state.database, settings, consent=app.state.campaign_consent)
        assert await sender.sync_unsubscribes() == 1

        assert [p[0] for p in customer360.patches] == [f"/customers/{customer}"]
        assert await sender.sync_unsubscribes() == 0

    async def test_a_click_token_cannot_unsubscribe(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        _, _, mail = await send_one(client, app, settings, smtp, "https://shop.example/x")
        [click_token, _] = LINK.findall(mail.body)
        assert (await client.post(f"/campaign-links/{click_token}")).status_code == 404


class TestProviderEvents:
    async def test_email_platform_events_naming_the_message_update_its_status(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, smtp: SmtpServer
    ) -> None:
        customer, campaign_id, mail = await send_one(client, app, settings, smtp, "News")
        # customer360 resolves the recipient's e-mail (the existing mapping's lookup).
        app.state.customer_resolver.mounts = {
            settings.customer360_url: httpx.MockTransport(
                lambda _: httpx.Response(200, json={"customer_id": str(customer)})
            )
        }
        message_id = Tracker(BASE, SECRET).verify(LINK.findall(mail.body)[0]).message_id
        base = {"email": mail.to[0], "timestamp": 1795424400}
        body = [
            {
                **base,
                "event": "delivered",
                "sg_event_id": f"d-{message_id}",
                "smtp-id": mail.message_id,
            },
            {
                **base,
                "event": "open",
                "sg_event_id": f"o-{message_id}",
                "rapport_message_id": str(message_id),
            },
            {
                **base,
                "event": "delivered",
                "sg_event_id": f"x-{message_id}",
                "smtp-id": f"<{uuid.uuid4()}@x>",
            },
        ]
        webhook_id = f"msg_{uuid.uuid4().hex}"
        event = WebhookReceived(
            customer_id=webhook_key("sendgrid", webhook_id),
            source="sendgrid",
            webhook_id=webhook_id,
            received_at=datetime.now(UTC),
            body=json.dumps(body),
        )
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None
        async with app.state.database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/rapport/gateway"))

        figures = await report(client, campaign_id)
        assert (figures["delivered"], figures["opened"], figures["clicked"]) == (1, 1, 0)
        async with app.state.database.session() as session:
            message = await session.get(CampaignMessage, message_id)
            assert message is not None
            assert message.delivered_at == datetime.fromtimestamp(1795424400, UTC)


class TestProductionSecrets:
    def production(self, **values: Any) -> Settings:
        return Settings(
            environment="production",
            internal_token_secret="s" * 40,
            database_url="postgresql+asyncpg://rapport@db/rapport",
            **values,
        )

    async def test_tracking_links_are_keyed_from_the_internal_secret_unless_set(self) -> None:
        derived = self.production()
        assert derived.tracking_secret not in ("", "s" * 40)
        assert self.production(campaign_tracking_secret="t" * 32).tracking_secret == "t" * 32

    async def test_short_tracking_secrets_and_the_dev_provider_secret_are_refused(self) -> None:
        with pytest.raises(ValueError, match="TRACKING_SECRET"):
            self.production(campaign_tracking_secret="short")
        with pytest.raises(ValueError, match="PROVIDER_SECRET"):
            self.production(campaign_provider_url="https://sms.example/send")
