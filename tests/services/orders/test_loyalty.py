"""Loyalty through the orders API: points earned by hand-computed rules, reversed on refund,
spent as a discount (never beyond the balance, even in parallel), tiers up at once and down
only after the grace period, each change an event."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.orders.config import Settings
from services.orders.loyalty import service as loyalty
from services.orders.main import create_app
from services.orders.periodic import PeriodicPasses, orders_passes
from services.orders.subscriptions import subscriptions
from shared.events import CustomerMerged, Envelope
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("orders:read", "orders:write")
ADMIN = bearer("orders:read", "orders:write", "admin")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def product(client, price: str, category: str | None = None, currency: str = "EUR") -> str:
    response = await client.post(
        "/products",
        json={
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Thing",
            "price": price,
            "currency": currency,
            **({"category": category} if category else {}),
        },
        headers=WRITE,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def place(client, lines, customer, **body: Any):
    return await client.post(
        "/orders",
        json={
            "customer_id": str(customer),
            "currency": body.pop("currency", "EUR"),
            "channel": "online_store",
            "lines": lines,
            **body,
        },
        headers=WRITE,
    )


async def pay(client, placed: dict[str, Any]) -> None:
    response = await client.post(
        f"/orders/{placed['id']}/payments",
        json={"amount": placed["total"], "method": "card"},
        headers=WRITE,
    )
    assert response.status_code == 201, response.text


async def account(client, customer) -> dict[str, Any]:
    response = await client.get(f"/customers/{customer}/loyalty", headers=WRITE)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def tier_events(app, customer) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = await session.execute(text("SELECT headers, payload FROM orders.outbox ORDER BY id"))
        return [
            json.loads(r.payload)
            for r in rows
            if dict(r.headers)["ce_type"] == "rapport.order.loyalty_tier_changed.v1"
            and json.loads(r.payload)["customer_id"] == str(customer)
        ]


async def test_points_follow_the_earn_rule_and_refunds_take_back_the_refunded_share(client):
    tea, mug = await product(client, "10.00", "tea-earn"), await product(client, "25.00")
    rule = await client.put(
        "/loyalty/earn-rules/EUR",
        json={
            "points_per_unit": "1.5",
            "point_value": "0.01",
            "category_multipliers": {"tea-earn": "2"},
        },
        headers=ADMIN,
    )
    assert rule.status_code == 200, rule.text
    assert rule.json()["configured"] is True
    customer = uuid.uuid4()
    placed = (
        await place(
            client,
            [
                {"product_id": tea, "quantity": 3, "tax_rate": "0.19"},
                {"product_id": mug, "quantity": 1, "tax_rate": "0.19"},
            ],
            customer,
        )
    ).json()
    assert (await account(client, customer))["balance"] == 0  # placed, not paid: nothing yet
    await pay(client, placed)  # total 65.45
    # tea: 30.00 * 1.5 * 2 = 90; mug: 25.00 * 1.5 = 37.5; floor(127.5) = 127 (tax earns nothing)
    mine = await account(client, customer)
    assert (mine["balance"], mine["rolling_points"]) == (127, 127)
    assert [(e["kind"], e["points"]) for e in mine["ledger"]] == [("earn", 127)]

    url = f"/orders/{placed['id']}/refunds"
    await client.post(url, json={"amount": "13.09"}, headers=WRITE)
    # keeps floor(127 * 52.36 / 65.45) = floor(101.6) = 101: 26 taken back
    mine = await account(client, customer)
    assert mine["balance"] == 101
    await client.post(url, json={"amount": "52.36"}, headers=WRITE)
    mine = await account(client, customer)
    assert mine["balance"] == 0
    assert [(e["kind"], e["points"]) for e in mine["ledger"]] == [
        ("earn_reversal", -101),
        ("earn_reversal", -26),
        ("earn", 127),
    ]


async def test_points_redeem_as_a_discount_and_come_back_on_cancel(client, app):
    tea = await product(client, "10.00")
    customer = uuid.uuid4()
    first = (await place(client, [{"product_id": tea, "quantity": 25}], customer)).json()
    await pay(client, first)  # default rule: 1 point per EUR -> 250
    assert (await account(client, customer))["balance"] == 250

    spend = await place(
        client,
        [{"product_id": tea, "quantity": 1, "tax_rate": "0.10"}],
        customer,
        loyalty_points=150,
    )
    assert spend.status_code == 201, spend.text
    placed = spend.json()
    # 150 points at 0.01 = 1.50 off; net 8.50, tax 0.85, total 9.35
    assert (placed["discount_total"], placed["tax_total"], placed["total"]) == (
        "1.50",
        "0.85",
        "9.35",
    )
    assert placed["discounts"] == [
        {
            "kind": "points",
            "code": None,
            "promotion_id": None,
            "points": 150,
            "amount": "1.50",
            "status": "active",
        }
    ]
    assert (await account(client, customer))["balance"] == 100

    beyond = await place(client, [{"product_id": tea, "quantity": 1}], customer, loyalty_points=101)
    assert beyond.status_code == 422
    assert beyond.json()["type"] == "/problems/insufficient-points"
    assert (beyond.json()["balance"], beyond.json()["requested"]) == (100, 101)

    stranger = await place(
        client, [{"product_id": tea, "quantity": 1}], uuid.uuid4(), loyalty_points=1
    )
    assert stranger.json()["type"] == "/problems/insufficient-points"

    too_much = await place(
        client, [{"product_id": tea, "quantity": 1}], customer, loyalty_points=1001
    )
    assert too_much.json()["type"] in ("/problems/points-exceed-order",)

    await client.post(f"/orders/{placed['id']}/status", json={"status": "cancelled"}, headers=WRITE)
    mine = await account(client, customer)
    assert mine["balance"] == 250
    assert [e["kind"] for e in mine["ledger"][:2]] == ["redeem_return", "redeem"]

    negative = await place(
        client, [{"product_id": tea, "quantity": 1}], customer, loyalty_points=-5
    )
    assert negative.json()["errors"][0]["pointer"] == "/body/loyalty_points"


async def test_two_parallel_orders_cannot_spend_the_same_points(app):
    async with api_client(app, rollback=False) as real:
        tea = await product(real, "10.00")
        customer = uuid.uuid4()
        first = (await place(real, [{"product_id": tea, "quantity": 10}], customer)).json()
        await pay(real, first)  # 100 points
        answers = await asyncio.gather(
            *(
                place(real, [{"product_id": tea, "quantity": 1}], customer, loyalty_points=80)
                for _ in range(2)
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 422]
        assert {a.json()["type"] for a in answers if a.status_code == 422} == {
            "/problems/insufficient-points"
        }
        assert (await account(real, customer))["balance"] == 20


async def test_tiers_go_up_at_once_and_down_only_after_the_grace_period(app):
    async with api_client(app) as client:
        tiers = await client.put(
            "/loyalty/tiers",
            json={
                "silver_points": 100,
                "gold_points": 200,
                "platinum_points": 300,
                "grace_days": 30,
            },
            headers=ADMIN,
        )
        assert tiers.status_code == 200, tiers.text
        tea = await product(client, "10.00", currency="CHF")
        customer = uuid.uuid4()
        placed = (
            await place(client, [{"product_id": tea, "quantity": 12}], customer, currency="CHF")
        ).json()
        await pay(client, placed)  # 120 points -> silver at once
        mine = await account(client, customer)
        assert (mine["tier"], mine["next_tier"], mine["points_to_next_tier"]) == (
            "silver",
            "gold",
            80,
        )
        (up,) = await tier_events(app, customer)
        assert (up["tier"], up["previous_tier"], up["direction"], up["rolling_points"]) == (
            "silver",
            None,
            "upgrade",
            120,
        )

        await client.post(
            f"/orders/{placed['id']}/refunds", json={"amount": "120.00"}, headers=WRITE
        )
        assert (await account(client, customer))["tier"] == "silver"  # no downgrade on refund

        now = datetime.now(UTC)
        async with app.state.database.session() as session:
            await loyalty.evaluate_tiers(session, now)
        assert (await account(client, customer))["tier"] == "silver"  # grace starts
        async with app.state.database.session() as session:
            await loyalty.evaluate_tiers(session, now + timedelta(days=29))
        assert (await account(client, customer))["tier"] == "silver"
        # the service's own periodic pass does the same (one batch per transaction)
        passes = PeriodicPasses(
            app.state.database,
            orders_passes(app.state.settings, batch=2),
            now=lambda: now + timedelta(days=30),
        )
        counts = await passes.run_once("loyalty-tiers")
        assert counts["downgraded"] >= 1
        assert (await account(client, customer))["tier"] is None
        events = await tier_events(app, customer)
        assert [(e["tier"], e["previous_tier"], e["direction"]) for e in events] == [
            ("silver", None, "upgrade"),
            (None, "silver", "downgrade"),
        ]

        bad = await client.put(
            "/loyalty/tiers",
            json={
                "silver_points": 300,
                "gold_points": 200,
                "platinum_points": 400,
                "grace_days": 1,
            },
            headers=ADMIN,
        )
        assert bad.status_code == 422
        assert (await client.put("/loyalty/tiers", json={}, headers=WRITE)).status_code == 403


async def test_the_ledger_pages_newest_first(client):
    tea = await product(client, "1.00")
    customer = uuid.uuid4()
    for _ in range(3):
        placed = (await place(client, [{"product_id": tea, "quantity": 1}], customer)).json()
        await pay(client, placed)
    first = (await client.get(f"/customers/{customer}/loyalty?limit=2", headers=WRITE)).json()
    assert first["balance"] == 3
    assert len(first["ledger"]) == 2
    assert first["next_cursor"]
    rest = (
        await client.get(
            f"/customers/{customer}/loyalty?limit=2&cursor={first['next_cursor']}", headers=WRITE
        )
    ).json()
    ids = [e["id"] for e in first["ledger"] + rest["ledger"]]
    assert len(ids) == 3
    assert ids == sorted(ids, reverse=True)
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"points_per_unit": "-1", "point_value": "0.01"}, "/body/points_per_unit"),
        ({"points_per_unit": "1", "point_value": "0"}, "/body/point_value"),
        ({"points_per_unit": "1", "point_value": 0.01}, "/body/point_value"),
        (
            {"points_per_unit": "1", "point_value": "0.01", "category_multipliers": {"a": "1000"}},
            "/body",
        ),
    ],
)
async def test_bad_earn_rules_are_refused(client, body, pointer):
    response = await client.put("/loyalty/earn-rules/EUR", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == pointer


async def test_a_merge_moves_the_ledger_balance_and_codes_to_the_survivor(client, app):
    tea = await product(client, "10.00")
    survivor, merged = uuid.uuid4(), uuid.uuid4()
    for customer, quantity in ((survivor, 3), (merged, 5)):
        placed = (await place(client, [{"product_id": tea, "quantity": quantity}], customer)).json()
        await pay(client, placed)
    promo = (
        await client.post(
            "/promotions",
            json={"name": "M", "kind": "fixed", "value": "1.00", "currency": "EUR"},
            headers=ADMIN,
        )
    ).json()
    issued = await client.post(
        f"/promotions/{promo['id']}/codes:issue",
        json={"customer_ids": [str(merged)]},
        headers=ADMIN,
    )
    code = issued.json()["codes"][0]["code"]

    handler = subscriptions.handler_for(CustomerMerged.event_type)
    assert handler is not None
    event = CustomerMerged(
        customer_id=survivor, merged_id=merged, merged_by="agent", merged_at=datetime.now(UTC)
    )
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))

    mine = await account(client, survivor)
    assert (mine["balance"], mine["rolling_points"]) == (80, 80)
    assert sorted(e["points"] for e in mine["ledger"]) == [30, 50]
    assert (await account(client, merged))["balance"] == 0
    used = await place(client, [{"product_id": tea, "quantity": 1}], survivor, coupon_codes=[code])
    assert used.status_code == 201, used.text
    assert used.json()["total"] == "9.00"
