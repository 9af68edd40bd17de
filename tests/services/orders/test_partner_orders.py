"""Partner order webhooks: resolved to a customer through customer360, applied once, in any
arrival order; replays store nothing new; every outcome is reported to the gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.orders.config import Settings
from services.orders.main import create_app
from services.orders.partner.customers import CustomerResolver, CustomerServiceUnavailable
from services.orders.partner.handlers import on_webhook_received
from services.orders.partner.service import handle_webhook
from services.orders.periodic import PeriodicPasses, orders_passes
from shared.db import Database
from shared.events import Envelope, WebhookReceived, webhook_key
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("orders:read", "orders:write")
ADMIN = bearer("orders:read", "admin")
C360 = bearer("customers:read", "customers:write", "customers:pii")
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def c360(make_settings):
    app = customer360_app(make_settings(Customer360Settings))
    async with api_client(app) as client:
        yield app, client


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings, c360):
    app = create_app(make_settings(Settings, customer360_url="http://customer360"))
    app.state.customer360_transport = httpx.ASGITransport(app=c360[0])
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


@pytest.fixture
def shop() -> str:
    return f"shop{uuid.uuid4().hex[:8]}"


async def product(client, sku: str, price: str = "10.00", currency: str = "EUR") -> str:
    response = await client.post(
        "/products",
        json={"sku": sku, "name": sku, "price": price, "currency": currency},
        headers=WRITE,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def webhook(
    source: str,
    type_: str,
    data: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
    webhook_id: str | None = None,
    body: str | None = None,
) -> WebhookReceived:
    payload: dict[str, Any] = {"type": type_, "data": data or {}}
    if at is not None:
        payload["timestamp"] = at.isoformat()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    return WebhookReceived(
        customer_id=webhook_key(source, webhook_id),
        source=source,
        webhook_id=webhook_id,
        received_at=datetime.now(UTC),
        body=body if body is not None else json.dumps(payload),
    )


def created(external_id: str, sku: str, **data: Any) -> dict[str, Any]:
    return {
        "id": external_id,
        "currency": "EUR",
        "created_at": T0.isoformat(),
        "customer": data.pop("customer", {"email": f"p{uuid.uuid4().hex[:8]}@example.com"}),
        "line_items": data.pop(
            "line_items", [{"sku": sku, "quantity": 2, "price": "10.00", "tax_rate": "0.19"}]
        ),
        **data,
    }


async def deliver(app, event: WebhookReceived) -> None:
    """What the consumer does with one message (its inbox claim aside)."""
    async with app.state.database.session() as session:
        await on_webhook_received(session, event, Envelope.wrap(event, source="/test"))


async def reports(app, source: str) -> dict[str, list[tuple[str, str]]]:
    """webhook id -> [(status, detail)] reported on rapport.webhook.status.v1."""
    found: dict[str, list[tuple[str, str]]] = {}
    async with app.state.database.session() as session:
        rows = await session.execute(
            text(
                "SELECT payload FROM orders.outbox WHERE topic = 'rapport.webhook.status.v1'"
                " ORDER BY id"
            )
        )
        for (payload,) in rows:
            body = json.loads(payload)
            if body["source"] == source:
                found.setdefault(body["webhook_id"], []).append((body["status"], body["detail"]))
    return found


async def counts(app, source: str) -> dict[str, int]:
    async with app.state.database.session() as session:
        row = (
            await session.execute(
                text(
                    'SELECT (SELECT count(*) FROM orders."order" WHERE source = :s), '
                    '(SELECT count(*) FROM orders.payment p JOIN orders."order" o '
                    "ON o.id = p.order_id WHERE o.source = :s), "
                    '(SELECT count(*) FROM orders.refund r JOIN orders."order" o '
                    "ON o.id = r.order_id WHERE o.source = :s), "
                    "(SELECT count(*) FROM orders.partner_event WHERE source = :s)"
                ),
                {"s": source},
            )
        ).one()
    return dict(zip(("orders", "payments", "refunds", "partner_events"), row, strict=True))


async def the_order(client, source: str, external_id: str) -> dict[str, Any]:
    listed = (await client.get("/orders?limit=200", headers=WRITE)).json()["items"]
    (order,) = [o for o in listed if (o["source"], o["external_id"]) == (source, external_id)]
    return dict(order)


class TestCreated:
    async def test_the_customer_is_resolved_by_email_and_the_order_placed_from_skus(
        self, app, client, c360, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        address = f"wei.{uuid.uuid4().hex[:8]}@example.com"
        person = await c360[1].post(
            "/customers", json={"display_name": "Wei", "emails": [address]}, headers=C360
        )
        assert person.status_code == 201, person.text
        event = webhook(
            shop,
            "order.created",
            created("1001", sku, customer={"email": address}, shipping_address={"city": "Xi'an"}),
        )
        await deliver(app, event)
        order = await the_order(client, shop, "1001")
        assert order["customer_id"] == person.json()["id"]
        assert (order["total"], order["status"], order["channel"]) == (
            "23.80",
            "pending",
            "online_store",
        )
        assert [line["sku"] for line in order["lines"]] == [sku]
        assert order["placed_at"].startswith("2026-11-20T10:00")
        ((status, detail),) = (await reports(app, shop))[event.webhook_id]
        assert status == "processed"
        assert order["id"] in detail

    async def test_an_unknown_phone_becomes_one_prospect_for_every_order(self, app, client, shop):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
        for external_id in ("A-1", "A-2"):
            await deliver(
                app,
                webhook(
                    shop, "order.created", created(external_id, sku, customer={"phone": phone})
                ),
            )
        first, second = await the_order(client, shop, "A-1"), await the_order(client, shop, "A-2")
        assert first["customer_id"] == second["customer_id"]

    async def test_an_order_already_placed_through_the_api_is_linked_not_placed_again(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        tea = await product(client, sku)
        placed = await client.post(
            "/orders",
            json={
                "customer_id": str(uuid.uuid4()),
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": tea, "quantity": 1}],
                "source": shop,
                "external_id": "77",
            },
            headers=WRITE,
        )
        assert placed.status_code == 201
        event = webhook(shop, "order.created", created("77", sku))
        await deliver(app, event)
        assert (await counts(app, shop))["orders"] == 1
        ((status, detail),) = (await reports(app, shop))[event.webhook_id]
        assert status == "processed"
        assert f"already placed as {placed.json()['id']}" in detail


class TestOutOfOrder:
    async def test_paid_and_refunded_before_created_are_parked_then_applied_in_order(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        paid = webhook(
            shop,
            "order.paid",
            {"id": "9", "payment_id": "pay_1", "gateway": "card"},
            at=T0 + timedelta(minutes=1),
        )
        refunded = webhook(
            shop,
            "order.refunded",
            {"id": "9", "refund_id": "re_1", "amount": "5.00", "reason": "dent"},
            at=T0 + timedelta(minutes=2),
        )
        await deliver(app, refunded)
        await deliver(app, paid)
        assert await counts(app, shop) == {
            "orders": 0,
            "payments": 0,
            "refunds": 0,
            "partner_events": 2,
        }
        assert await reports(app, shop) == {}  # parked: nothing to report yet
        waiting = await client.get(
            f"/orders/partner-events?source={shop}&status=parked", headers=ADMIN
        )
        assert waiting.status_code == 200, waiting.text
        assert sorted(
            (e["kind"], e["event_ref"], e["detail"]) for e in waiting.json()["items"]
        ) == [
            ("paid", "pay_1", "order 9 not created yet"),
            ("refunded", "re_1", "order 9 not created yet"),
        ]
        assert (await client.get("/orders/partner-events", headers=WRITE)).status_code == 403

        create = webhook(shop, "order.created", created("9", sku), at=T0)
        await deliver(app, create)
        order = await the_order(client, shop, "9")
        assert (order["status"], order["paid_total"], order["refunded_total"]) == (
            "partially_refunded",
            "23.80",
            "5.00",
        )
        assert order["payments"][0]["method"] == "card"
        assert order["payments"][0]["reference"] == "pay_1"
        applied = await client.get(f"/orders/partner-events?source={shop}", headers=ADMIN)
        assert sorted((e["kind"], e["status"], e["order_id"]) for e in applied.json()["items"]) == [
            (kind, "applied", order["id"]) for kind in ("created", "paid", "refunded")
        ]
        found = await reports(app, shop)
        assert found[create.webhook_id][0][0] == "processed"
        assert found[paid.webhook_id] == [("processed", "paid 23.80 EUR (was parked)")]
        assert found[refunded.webhook_id] == [("processed", "refunded 5.00 EUR (was parked)")]
        async with app.state.database.session() as session:
            statuses = await session.execute(
                text(
                    "SELECT convert_from(payload, 'UTF8')::jsonb->>'status' FROM orders.outbox "
                    "WHERE convert_from(payload, 'UTF8')::jsonb->>'order_id' = :o ORDER BY id"
                ),
                {"o": order["id"]},
            )
            assert [s for (s,) in statuses] == [None, "paid", "partially_refunded"]

    async def test_a_refund_after_created_but_before_paid_waits_for_the_payment(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        await deliver(app, webhook(shop, "order.created", created("5", sku)))
        refund = webhook(shop, "order.refunded", {"id": "5", "amount": "23.80"})
        await deliver(app, refund)
        assert (await the_order(client, shop, "5"))["status"] == "pending"
        assert refund.webhook_id not in await reports(app, shop)
        await deliver(app, webhook(shop, "order.paid", {"id": "5", "amount": "23.80"}))
        order = await the_order(client, shop, "5")
        assert (order["status"], order["refunded_total"]) == ("refunded", "23.80")
        assert (await reports(app, shop))[refund.webhook_id][0][0] == "processed"

    async def test_cancelled_before_created_cancels_the_order_when_it_arrives(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        await deliver(app, webhook(shop, "order.cancelled", {"id": "C1", "reason": "changed mind"}))
        await deliver(app, webhook(shop, "order.created", created("C1", sku)))
        assert (await the_order(client, shop, "C1"))["status"] == "cancelled"


class TestReplays:
    async def test_replayed_and_resent_webhooks_store_nothing_new(self, app, client, shop):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        early_paid = webhook(shop, "order.paid", {"id": "R1", "payment_id": "p1"})
        await deliver(app, early_paid)
        await deliver(app, webhook(shop, "order.paid", {"id": "R1", "payment_id": "p1"}))
        assert (await counts(app, shop))["partner_events"] == 1  # one parked action

        create = webhook(shop, "order.created", created("R1", sku))
        await deliver(app, create)
        before = await counts(app, shop)
        assert before == {"orders": 1, "payments": 1, "refunds": 0, "partner_events": 2}
        order_before = await the_order(client, shop, "R1")

        # The gateway's replay: same webhook id, a new event; and a partner re-send with a
        # new webhook id but the same payment id.
        await deliver(
            app, webhook(shop, "order.created", created("R1", sku), webhook_id=create.webhook_id)
        )
        await deliver(
            app,
            webhook(
                shop,
                "order.paid",
                {"id": "R1", "payment_id": "p1"},
                webhook_id=early_paid.webhook_id,
            ),
        )
        resent = webhook(shop, "order.paid", {"id": "R1", "payment_id": "p1"})
        await deliver(app, resent)

        assert await counts(app, shop) == before
        order_after = await the_order(client, shop, "R1")
        assert order_after["version"] == order_before["version"]
        found = await reports(app, shop)
        assert [s for s, _ in found[create.webhook_id]] == ["processed", "ignored"]
        assert found[resent.webhook_id][0][0] == "ignored"
        assert "duplicate" in found[resent.webhook_id][0][1]


class TestRefused:
    async def test_an_unknown_sku_fails_with_the_reason_and_a_replay_after_the_fix_applies(
        self, app, client, shop
    ):
        sku = f"NEW-{uuid.uuid4().hex[:6]}"
        event = webhook(shop, "order.created", created("F1", sku))
        await deliver(app, event)
        assert (await counts(app, shop))["orders"] == 0
        assert (await reports(app, shop))[event.webhook_id] == [
            ("failed", f"unknown or inactive SKU(s): {sku}")
        ]
        await product(client, sku)
        await deliver(
            app, webhook(shop, "order.created", created("F1", sku), webhook_id=event.webhook_id)
        )
        assert (await counts(app, shop))["orders"] == 1
        assert (await reports(app, shop))[event.webhook_id][-1][0] == "processed"

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            ({"line_items": [{"sku": "X", "quantity": 1, "price": 9.5}]}, "line_items/0/price"),
            ({"line_items": [{"sku": "X", "quantity": -1, "price": "9"}]}, "line_items/0/quantity"),
            ({"customer": {"name": "nobody"}}, "customer"),
            ({"currency": "EURO"}, "currency"),
        ],
    )
    async def test_a_malformed_order_fails_naming_the_field(self, app, client, shop, data, reason):
        event = webhook(shop, "order.created", {**created("M1", "X"), **data})
        await deliver(app, event)
        ((status, detail),) = (await reports(app, shop))[event.webhook_id]
        assert status == "failed"
        assert reason in detail
        assert await counts(app, shop) == {
            "orders": 0,
            "payments": 0,
            "refunds": 0,
            "partner_events": 0,
        }

    async def test_money_the_order_cannot_take_fails_and_changes_nothing(
        self, app, client, c360, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        buyer = {"email": f"m{uuid.uuid4().hex[:8]}@example.com"}
        cents = webhook(
            shop,
            "order.created",
            created(
                "M2",
                sku,
                customer=buyer,
                line_items=[{"sku": sku, "quantity": 1, "price": "1.999"}],
            ),
        )
        yen = webhook(
            shop, "order.created", {**created("M3", sku, customer=buyer), "currency": "JPY"}
        )
        for event in (cents, yen):
            await deliver(app, event)
        found = await reports(app, shop)
        assert found[cents.webhook_id][0][0] == "failed"
        assert "EUR has 2 decimal places" in found[cents.webhook_id][0][1]
        assert "priced in EUR, the order is in JPY" in found[yen.webhook_id][0][1]
        # refused before the customer was resolved: customer360 made no prospect for them
        lookup = await c360[1].post(
            "/customers:resolve", json={**buyer, "create": False}, headers=C360
        )
        assert lookup.status_code == 404
        await deliver(app, webhook(shop, "order.created", created("M4", sku)))
        await deliver(app, webhook(shop, "order.paid", {"id": "M4"}))
        too_much = webhook(shop, "order.refunded", {"id": "M4", "amount": "23.81"})
        await deliver(app, too_much)
        ((status, detail),) = (await reports(app, shop))[too_much.webhook_id]
        assert status == "failed"
        assert "exceeds what was paid" in detail
        order = await the_order(client, shop, "M4")
        assert (order["status"], order["refunded_total"]) == ("paid", "0.00")

    async def test_webhooks_that_are_not_order_webhooks_are_left_to_other_services(
        self, app, client, shop
    ):
        for event in (
            webhook(shop, "email.delivered", {"id": "x"}),
            webhook(shop, "", body="not json at all"),
            webhook(shop, "", body='["a list"]'),
        ):
            await deliver(app, event)
        assert await reports(app, shop) == {}
        assert (await counts(app, shop))["partner_events"] == 0


async def test_customer360_unreachable_is_retried_as_infrastructure_not_failed(
    app, client, make_settings, shop
):
    sku = f"MUG-{uuid.uuid4().hex[:6]}"
    await product(client, sku)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    resolver = CustomerResolver(
        make_settings(Settings, customer360_url="http://customer360"), httpx.MockTransport(refuse)
    )
    event = webhook(shop, "order.created", created("D1", sku))
    with pytest.raises(CustomerServiceUnavailable):
        async with app.state.database.session() as session:
            await handle_webhook(session, event, resolver)
    await resolver.close()
    assert isinstance(CustomerServiceUnavailable("x"), ConnectionError)
    assert await counts(app, shop) == {
        "orders": 0,
        "payments": 0,
        "refunds": 0,
        "partner_events": 0,
    }
    assert await reports(app, shop) == {}


SEVEN_DAYS = timedelta(days=7)


def gave_up(external_id: str) -> str:
    return (
        f"gave up: order.created for {external_id} did not arrive within 7 days; "
        "replay this webhook once it has"
    )


async def backdate(app, source: str, external_id: str, age: timedelta) -> None:
    """As if the parked actions of this order had been received ``age`` ago."""
    async with app.state.database.session() as session:
        await session.execute(
            text(
                "UPDATE orders.partner_event SET received_at = now() - CAST(:age AS interval) "
                "WHERE source = :s AND external_order_id = :e"
            ),
            {"age": age, "s": source, "e": external_id},
        )


async def partner_rows(app, source: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(external order id, kind) -> (status, detail, payload, webhook id, received_at)."""
    async with app.state.database.session() as session:
        rows = await session.execute(
            text(
                "SELECT external_order_id, kind, status, detail, payload, webhook_id, received_at "
                "FROM orders.partner_event WHERE source = :s"
            ),
            {"s": source},
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}


async def expire(app) -> dict[str, int]:
    """One pass of the service's own periodic expiry, at the real time."""
    counts: dict[str, int] = await app.state.periodic_passes.run_once("partner-expiry")
    return counts


class TestExpiry:
    async def test_a_parked_action_older_than_the_ttl_is_reported_failed_and_a_replay_applies(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        old = webhook(shop, "order.paid", {"id": "E1", "payment_id": "pay_old", "gateway": "card"})
        young = webhook(shop, "order.paid", {"id": "E2", "payment_id": "pay_young"})
        await deliver(app, old)
        await deliver(app, young)
        await backdate(app, shop, "E1", SEVEN_DAYS + timedelta(minutes=1))
        await backdate(app, shop, "E2", SEVEN_DAYS - timedelta(minutes=1))
        before = await partner_rows(app, shop)
        assert before[("E1", "paid")][:3] == (
            "parked",
            "order E1 not created yet",
            {"id": "E1", "payment_id": "pay_old", "amount": None, "gateway": "card"},
        )

        assert await expire(app) == {"expired": 1}
        after = await partner_rows(app, shop)
        assert after[("E1", "paid")][:4] == ("failed", gave_up("E1"), None, old.webhook_id)
        assert after[("E2", "paid")][:3] == before[("E2", "paid")][:3]
        assert after[("E2", "paid")][2]["payment_id"] == "pay_young"
        assert await reports(app, shop) == {old.webhook_id: [("failed", gave_up("E1"))]}
        async with app.state.database.session() as session:
            (event,) = [
                json.loads(payload)
                for (payload,) in await session.execute(
                    text(
                        "SELECT payload FROM orders.outbox "
                        "WHERE topic = 'rapport.webhook.status.v1' AND key = :k"
                    ),
                    {"k": str(webhook_key(shop, old.webhook_id))},
                )
            ]
        assert (event["source"], event["processed_by"], event["resolved_customer_ids"]) == (
            shop,
            "orders",
            [],
        )
        assert await expire(app) == {"expired": 0}  # given up once; the young one waits on

        # The shop sends the order at last, and the operator replays the failed payment.
        await deliver(app, webhook(shop, "order.created", created("E1", sku)))
        assert (await the_order(client, shop, "E1"))["status"] == "pending"  # not drained
        await deliver(
            app,
            webhook(
                shop,
                "order.paid",
                {"id": "E1", "payment_id": "pay_old", "gateway": "card"},
                webhook_id=old.webhook_id,
            ),
        )
        order = await the_order(client, shop, "E1")
        assert (order["status"], order["paid_total"]) == ("paid", "23.80")
        assert [(p["reference"], p["method"]) for p in order["payments"]] == [("pay_old", "card")]
        assert (await reports(app, shop))[old.webhook_id] == [
            ("failed", gave_up("E1")),
            ("processed", "paid 23.80 EUR"),
        ]
        status, detail, payload, *_ = (await partner_rows(app, shop))[("E1", "paid")]
        assert (status, detail, payload) == ("applied", "paid 23.80 EUR", None)

    async def test_a_replay_before_its_order_parks_again_for_a_whole_new_wait(
        self, app, client, shop
    ):
        paid = webhook(shop, "order.paid", {"id": "E5", "payment_id": "p5"})
        await deliver(app, paid)
        await backdate(app, shop, "E5", timedelta(days=8))
        assert await expire(app) == {"expired": 1}
        replayed_at = datetime.now(UTC)
        await deliver(
            app,
            webhook(
                shop, "order.paid", {"id": "E5", "payment_id": "p5"}, webhook_id=paid.webhook_id
            ),
        )
        status, detail, payload, _, received_at = (await partner_rows(app, shop))[("E5", "paid")]
        assert (status, detail, payload["payment_id"]) == (
            "parked",
            "order E5 not created yet",
            "p5",
        )
        assert received_at >= replayed_at
        assert await expire(app) == {"expired": 0}
        assert (await reports(app, shop))[paid.webhook_id] == [("failed", gave_up("E5"))]

    async def test_a_refund_waiting_for_the_payment_gives_up_naming_the_customer(
        self, app, client, shop
    ):
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        await product(client, sku)
        await deliver(app, webhook(shop, "order.created", created("E3", sku)))
        refund = webhook(shop, "order.refunded", {"id": "E3", "refund_id": "r3", "amount": "5.00"})
        await deliver(app, refund)
        await backdate(app, shop, "E3", timedelta(days=30))  # the created row too: not parked
        assert await expire(app) == {"expired": 1}
        detail = "gave up: order E3 was not paid within 7 days; replay this webhook once it has"
        rows = await partner_rows(app, shop)
        assert rows[("E3", "refunded")][:3] == ("failed", detail, None)
        assert rows[("E3", "created")][0] == "applied"
        order = await the_order(client, shop, "E3")
        async with app.state.database.session() as session:
            resolved = await session.scalar(
                text(
                    "SELECT convert_from(payload, 'UTF8')::jsonb->'resolved_customer_ids' "
                    "FROM orders.outbox WHERE key = :k"
                ),
                {"k": str(webhook_key(shop, refund.webhook_id))},
            )
        assert resolved == [order["customer_id"]]
        # paid later: the given-up refund stays given up until it is replayed
        await deliver(app, webhook(shop, "order.paid", {"id": "E3"}))
        order = await the_order(client, shop, "E3")
        assert (order["status"], order["refunded_total"]) == ("paid", "0.00")

    async def test_a_pass_with_nothing_parked_expires_nothing(self, app, client):
        assert await expire(app) == {"expired": 0}


async def test_an_order_whose_webhook_is_being_applied_is_left_to_the_next_pass(
    make_settings, c360, shop
):
    """Committed for real: the pass runs on its own connections, beside a webhook of the
    same order whose transaction holds the order's lock."""
    app = create_app(make_settings(Settings, customer360_url="http://customer360"))
    app.state.customer360_transport = httpx.ASGITransport(app=c360[0])
    async with api_client(app, rollback=False):
        database = app.state.database
        paid = webhook(shop, "order.paid", {"id": "E4", "payment_id": "p4"})
        await deliver(app, paid)
        await backdate(app, shop, "E4", timedelta(days=8))
        cancel = webhook(shop, "order.cancelled", {"id": "E4"})
        async with database.session() as holding:
            await on_webhook_received(holding, cancel, Envelope.wrap(cancel, source="/test"))
            # the cancel is parked but not committed: its order's lock is held
            assert await expire(app) == {"expired": 0}
        assert await expire(app) == {"expired": 1}
        rows = await partner_rows(app, shop)
        assert (rows[("E4", "paid")][0], rows[("E4", "cancelled")][0]) == ("failed", "parked")
        assert await reports(app, shop) == {paid.webhook_id: [("failed", gave_up("E4"))]}


async def test_a_pass_that_cannot_reach_the_database_warns_and_runs_again(make_settings, caplog):
    settings = make_settings(
        Settings, partner_expiry_interval_s=0.02, loyalty_evaluation_interval_s=0
    )
    down = Database("postgresql+asyncpg://rapport@127.0.0.1:1/rapport", schema="orders")
    passes = PeriodicPasses(down, orders_passes(settings))
    caplog.set_level(logging.WARNING, logger="shared.periodic")
    passes.start()
    try:
        async with asyncio.timeout(10):
            while len(caplog.records) < 2:
                await asyncio.sleep(0.02)
    finally:
        await passes.stop()
        await down.dispose()
    names = {r.getMessage().split(" ")[0] for r in caplog.records}
    assert names == {"partner-expiry"}  # the loyalty pass is off (interval 0)
    assert all(
        r.levelno == logging.WARNING and "pass failed" in r.getMessage() for r in caplog.records
    )


async def test_a_pass_goes_through_every_batch(app, client, shop):
    events = [webhook(shop, "order.paid", {"id": f"B{n}", "payment_id": f"p{n}"}) for n in range(5)]
    for event in events:
        await deliver(app, event)
        await backdate(app, shop, event_external_id(event), timedelta(days=8))
    passes = PeriodicPasses(app.state.database, orders_passes(app.state.settings, batch=2))
    assert await passes.run_once("partner-expiry") == {"expired": 5}
    assert sorted((await reports(app, shop)).values()) == sorted(
        [("failed", gave_up(f"B{n}"))] for n in range(5)
    )


def event_external_id(event: WebhookReceived) -> str:
    return str(json.loads(event.body)["data"]["id"])
