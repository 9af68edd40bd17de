"""Partner webhooks → interactions: each format's mapping, customers found through
customer360 (in-process), idempotent replays, and the WebhookProcessed status."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.interactions.config import Settings
from services.interactions.interaction.customers import ResolverUnavailable
from services.interactions.main import create_app
from services.interactions.subscriptions import subscriptions
from shared.db import database_unavailable
from shared.events import Envelope, WebhookReceived, webhook_key
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

C360 = bearer("customers:read", "customers:write", "customers:pii")
READER = bearer("interactions:read")
FORMATS = {"mailer": "email-events", "phones": "conversations", "tracker": "web-tracking"}


@pytest_asyncio.fixture(loop_scope="session")
async def c360(make_settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = customer360_app(make_settings(Customer360Settings))
    async with api_client(app) as client:
        yield app, client


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any, c360: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    app = create_app(
        make_settings(Settings, customer360_url="http://customer360", webhook_formats=FORMATS)
    )
    app.state.customer_resolver.mounts = {"http://customer360": httpx.ASGITransport(app=c360[0])}
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def a_customer(c360: tuple[FastAPI, httpx.AsyncClient], **fields: Any) -> str:
    response = await c360[1].post(
        "/customers", json={"display_name": "Wei Zhang", **fields}, headers=C360
    )
    assert response.status_code == 201, response.text
    customer_id: str = response.json()["id"]
    return customer_id


def received(source: str, body: Any, webhook_id: str | None = None) -> WebhookReceived:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    return WebhookReceived(
        customer_id=webhook_key(source, webhook_id),
        source=source,
        webhook_id=webhook_id,
        received_at=datetime.now(UTC),
        body=body if isinstance(body, str) else json.dumps(body),
    )


async def deliver(app: FastAPI, event: WebhookReceived) -> None:
    """What the consumer runner does with the event (its inbox aside)."""
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/rapport/gateway"))


async def statuses(app: FastAPI, event: WebhookReceived) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT topic, headers, payload FROM interactions.outbox WHERE key = :k "
                    "ORDER BY id"
                ),
                {"k": str(webhook_key(event.source, event.webhook_id))},
            )
        ).all()
    assert {r.topic for r in rows} <= {"rapport.webhook.status.v1"}
    assert {dict(r.headers)["ce_type"] for r in rows} <= {"rapport.webhook.processed.v1"}
    return [json.loads(r.payload) for r in rows]


async def listed(client: httpx.AsyncClient, customer_id: str, source: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/interactions", params={"customer_id": customer_id, "source": source}, headers=READER
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def sendgrid(email: str) -> list[dict[str, Any]]:
    events = [
        {"event": "processed", "sg_event_id": "ev-0"},
        {"event": "delivered", "sg_event_id": "ev-1"},
        {"event": "open", "sg_event_id": "ev-2", "marketing_campaign_name": "spring"},
        {"event": "click", "sg_event_id": "ev-3", "url": "https://shop.example.com/x"},
        {"event": "bounce", "sg_event_id": "ev-4", "type": "blocked", "reason": "full"},
        {"event": "open", "sg_event_id": "ev-5", "email": "nobody@example.com"},
    ]
    return [
        {"email": email, "timestamp": 1795424400 + n, "sg_message_id": "m-1", **e}
        for n, e in enumerate(events)
    ]


class TestEmailEvents:
    async def test_maps_delivered_opened_clicked_and_bounced_to_the_recipient(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        email = f"wei.{uuid.uuid4().hex[:8]}@example.com"
        customer_id = await a_customer(c360, emails=[email])
        event = received("mailer", sendgrid(email))

        await deliver(app, event)

        items = await listed(client, customer_id, "mailer")
        assert [(i["kind"], i["event_id"]) for i in items] == [
            ("email_delivered", "ev-1"),
            ("email_opened", "ev-2"),
            ("email_clicked", "ev-3"),
            ("email_bounced", "ev-4"),
        ]
        assert {(i["channel"], i["direction"]) for i in items} == {("email", "outbound")}
        assert datetime.fromisoformat(items[0]["occurred_at"]) == datetime.fromtimestamp(
            1795424401, UTC
        )
        assert items[1]["metadata"] == {"message_id": "m-1", "campaign": "spring"}
        assert items[2]["metadata"]["url"] == "https://shop.example.com/x"
        assert items[3]["metadata"] == {
            "message_id": "m-1",
            "bounce_type": "soft",
            "reason": "full",
        }
        [status] = await statuses(app, event)
        assert status["status"] == "processed"
        assert status["processed_by"] == "interactions"
        assert status["webhook_id"] == event.webhook_id
        assert status["detail"].startswith("4 stored, 0 duplicate, 2 ignored, 0 invalid")
        assert "'processed' is not mapped" in status["detail"]
        assert "ev-5: no such customer" in status["detail"]

    async def test_a_replayed_webhook_stores_nothing_new(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        email = f"li.{uuid.uuid4().hex[:8]}@example.com"
        customer_id = await a_customer(c360, emails=[email])
        first = received("mailer", sendgrid(email))
        # a replay from the gateway's delivery log: same webhook, a new event
        replay = received("mailer", first.body, webhook_id=first.webhook_id)

        await deliver(app, first)
        await deliver(app, replay)

        assert len(await listed(client, customer_id, "mailer")) == 4
        details = [s["detail"] for s in await statuses(app, first)]
        assert [d.split(" (")[0] for d in details] == [
            "4 stored, 0 duplicate, 2 ignored, 0 invalid",
            "0 stored, 4 duplicate, 2 ignored, 0 invalid",
        ]
        async with app.state.database.session() as session:
            events = await session.scalar(
                text("SELECT count(*) FROM interactions.outbox WHERE key = :k"),
                {"k": customer_id},
            )
        assert events == 4  # one InteractionRecorded each, none for the replay

    async def test_does_not_create_customers_for_unknown_recipients(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        stranger = f"who.{uuid.uuid4().hex[:8]}@example.com"
        event = received("mailer", [{"event": "open", "email": stranger, "timestamp": 1795424400}])

        await deliver(app, event)

        [status] = await statuses(app, event)
        assert status["status"] == "ignored"
        assert status["detail"].startswith("0 stored, 0 duplicate, 1 ignored")
        found = await c360[1].post(
            "/customers:resolve", json={"email": stranger, "create": False}, headers=C360
        )
        assert found.status_code == 404


class TestConversations:
    async def test_an_inbound_call_from_a_new_number_becomes_a_prospect_with_the_call(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
        body = {
            "events": [
                {
                    "id": f"call-{uuid.uuid4().hex[:8]}",
                    "type": "call",
                    "direction": "inbound",
                    "customer": {"phone": phone, "name": "Chen Jing"},
                    "agent": "agent-9",
                    "started_at": "2026-11-20T10:00:00+08:00",
                    "duration_s": 312,
                    "status": "answered",
                    "summary": "Wants to change the delivery address.",
                },
                {
                    "id": f"chat-{uuid.uuid4().hex[:8]}",
                    "type": "chat",
                    "direction": "inbound",
                    "customer": {"phone": phone},
                    "started_at": "2026-11-20T10:30:00+08:00",
                    "thread_id": "t-77",
                },
                {"id": "x", "type": "fax", "customer": {"phone": phone}},
            ]
        }
        event = received("phones", body)

        await deliver(app, event)

        resolved = await c360[1].post(
            "/customers:resolve", json={"phone": phone, "create": False}, headers=C360
        )
        assert resolved.status_code == 200
        assert resolved.json()["customer"]["display_name"] == "Chen Jing"
        items = await listed(client, resolved.json()["customer_id"], "phones")
        assert [(i["channel"], i["kind"]) for i in items] == [("call", "call"), ("chat", "message")]
        call = items[0]
        assert (call["direction"], call["agent_id"]) == ("inbound", "agent-9")
        assert call["metadata"] == {"duration_s": 312, "outcome": "answered"}
        assert call["summary"] == "Wants to change the delivery address."
        assert items[1]["metadata"] == {"thread_id": "t-77"}
        [status] = await statuses(app, event)
        assert status["status"] == "processed"
        assert status["detail"].startswith("2 stored, 0 duplicate, 1 ignored")

    async def test_an_event_with_a_future_time_is_reported_invalid_and_not_stored(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        email = f"ma.{uuid.uuid4().hex[:8]}@example.com"
        customer_id = await a_customer(c360, emails=[email])
        event = received(
            "phones",
            {
                "id": "c-1",
                "type": "call",
                "customer": {"email": email},
                "started_at": "2999-01-01T00:00:00Z",
            },
        )

        await deliver(app, event)

        assert await listed(client, customer_id, "phones") == []
        [status] = await statuses(app, event)
        assert status["status"] == "failed"
        assert "c-1: occurred_at: Value error, must not be more than 5 minutes" in status["detail"]


class TestWebTracking:
    async def test_maps_pages_screens_searches_and_product_clicks_of_identified_visitors(
        self, app: FastAPI, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        email = f"zhou.{uuid.uuid4().hex[:8]}@example.com"
        customer_id = await a_customer(c360, emails=[email])
        traits = {"traits": {"email": email}}
        at = "2026-11-20T08:00:00.000Z"
        body = {
            "batch": [
                {
                    "type": "page",
                    "messageId": "m1",
                    "timestamp": at,
                    "context": {**traits, "page": {"url": "https://shop.example.com/tea"}},
                    "properties": {"title": "Tea"},
                },
                {"type": "screen", "messageId": "m2", "timestamp": at, "name": "Cart"}
                | {"context": traits},
                {
                    "type": "track",
                    "event": "Products Searched",
                    "messageId": "m3",
                    "timestamp": at,
                    "context": traits,
                    "properties": {"query": "oolong"},
                },
                {
                    "type": "track",
                    "event": "Product Clicked",
                    "messageId": "m4",
                    "timestamp": at,
                    "context": traits,
                    "properties": {"product_id": "SKU-7"},
                },
                {"type": "track", "event": "Checkout Started", "messageId": "m5"} | traits,
                {"type": "page", "messageId": "m6", "anonymousId": "anon-1"},
            ]
        }
        event = received("tracker", body)

        await deliver(app, event)

        items = await listed(client, customer_id, "tracker")
        by_id = {i["event_id"]: i for i in items}
        assert set(by_id) == {"m1", "m2", "m3", "m4"}
        assert by_id["m1"]["metadata"] == {"url": "https://shop.example.com/tea", "title": "Tea"}
        assert (by_id["m2"]["channel"], by_id["m2"]["metadata"]["url"]) == ("app", "app://Cart")
        assert (by_id["m3"]["kind"], by_id["m3"]["metadata"]) == ("search", {"term": "oolong"})
        assert (by_id["m4"]["kind"], by_id["m4"]["metadata"]) == ("click", {"product": "SKU-7"})
        [status] = await statuses(app, event)
        assert status["status"] == "processed"
        assert status["detail"].startswith("4 stored, 0 duplicate, 2 ignored")
        assert "anonymous" in status["detail"]


class TestUnusableWebhooks:
    async def test_a_body_that_is_not_json_fails_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        event = received("mailer", "<xml>not json</xml>")

        await deliver(app, event)

        [status] = await statuses(app, event)
        assert status["status"] == "failed"
        assert status["detail"].startswith("unreadable email-events payload: the body is not JSON")

    async def test_a_source_of_another_service_is_left_alone(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        event = received("shopify", {"order": {"id": 1}})

        await deliver(app, event)

        assert await statuses(app, event) == []

    async def test_waits_for_customer360_when_it_cannot_answer(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        def down(request: httpx.Request) -> httpx.Response:
            return httpx.Response(503, json={"type": "/problems/service-unavailable"})

        resolver = app.state.customer_resolver
        saved_mounts, saved_client = resolver.mounts, resolver._client
        resolver.mounts, resolver._client = {"http://customer360": httpx.MockTransport(down)}, None
        event = received("mailer", sendgrid("wei@example.com"))
        try:
            with pytest.raises(ResolverUnavailable) as raised:
                await deliver(app, event)
        finally:
            await resolver.close()
            resolver.mounts, resolver._client = saved_mounts, saved_client
        # the consumer takes it for infrastructure: it retries, never dead-letters
        assert database_unavailable(raised.value)
        assert await statuses(app, event) == []  # nothing reported, nothing stored: rolled back
        await deliver(app, event)  # customer360 answers again: the same event now applies
        [status] = await statuses(app, event)
        # customer360 now answered (nobody has that address): decided, not failed
        assert status["status"] == "ignored"
        assert "no such customer" in status["detail"]
