"""Orders through the API: exact totals, payments and refunds, the status machine, partner
ids, idempotency, events, data scope."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.orders.config import Settings
from services.orders.main import create_app
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("orders:read", "orders:write")
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def product(client, price="19.99", currency="EUR") -> str:
    response = await client.post(
        "/products",
        json={
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": "Tea",
            "price": price,
            "currency": currency,
        },
        headers=WRITE,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def place(client, lines: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/orders",
        json={
            "customer_id": str(body.pop("customer_id", uuid.uuid4())),
            "currency": "EUR",
            "channel": "online_store",
            "lines": lines,
            **body,
        },
        headers=body.pop("headers", WRITE),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def events(app, order_id: str) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = await session.execute(text("SELECT headers, payload FROM orders.outbox ORDER BY id"))
        found = []
        for row in rows:
            payload = json.loads(row.payload)
            if payload.get("order_id") == order_id:
                found.append({"type": dict(row.headers)["ce_type"], **payload})
        return found


class TestPlacing:
    async def test_totals_are_computed_exactly_and_the_event_carries_them(self, client, app):
        tea = await product(client)
        order = await place(
            client,
            [
                {"product_id": tea, "quantity": 3, "discount": "5.00", "tax_rate": "0.19"},
                {"product_id": tea, "quantity": 1, "unit_price": "0.70", "tax_rate": "0.05"},
            ],
        )
        assert order["subtotal"] == "60.67"
        assert order["discount_total"] == "5.00"
        assert order["tax_total"] == "10.48"  # 10.44 + 0.04 (0.035 rounds half to even)
        assert order["total"] == "66.15"
        assert order["status"] == "pending"
        assert [line["total"] for line in order["lines"]] == ["65.41", "0.74"]
        (placed,) = await events(app, order["id"])
        assert placed["type"] == "rapport.order.placed.v1"
        assert placed["total"] == "66.15"
        assert [i["quantity"] for i in placed["items"]] == [3, 1]

    @pytest.mark.parametrize(
        ("line", "pointer"),
        [
            ({"quantity": -1}, "/body/lines/0/quantity"),
            ({"quantity": 1, "unit_price": "1.999"}, "/body/lines/0/unit_price"),
            ({"quantity": 1, "unit_price": 1.5}, "/body/lines/0/unit_price"),
            ({"quantity": 1, "discount": "100.00"}, "/body/lines/0/discount"),
            ({"quantity": 1, "tax_rate": "1.5"}, "/body/lines/0/tax_rate"),
        ],
    )
    async def test_bad_lines_answer_422_pointing_at_them(self, client, app, line, pointer):
        tea = await product(client)
        response = await client.post(
            "/orders",
            json={
                "customer_id": str(uuid.uuid4()),
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": tea, **line}],
            },
            headers=WRITE,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        assert pointer in {e["pointer"] for e in response.json()["errors"]}

    async def test_unknown_products_and_mismatched_currencies_are_refused(self, client):
        yen = await product(client, price="500", currency="JPY")
        response = await client.post(
            "/orders",
            json={
                "customer_id": str(uuid.uuid4()),
                "currency": "EUR",
                "channel": "marketplace",
                "lines": [
                    {"product_id": yen, "quantity": 1},
                    {"product_id": str(uuid.uuid4()), "quantity": 1},
                ],
            },
            headers=WRITE,
        )
        assert response.status_code == 422
        details = {e["pointer"]: e["detail"] for e in response.json()["errors"]}
        assert "priced in JPY" in details["/body/lines/0/product_id"]
        assert "unknown" in details["/body/lines/1/product_id"]

    async def test_a_partner_order_id_names_one_order(self, client):
        tea = await product(client)
        external = f"#{uuid.uuid4().hex[:8]}"
        first = await place(
            client, [{"product_id": tea, "quantity": 1}], source="shop", external_id=external
        )
        again = await client.post(
            "/orders",
            json={
                "customer_id": first["customer_id"],
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": tea, "quantity": 1}],
                "source": "shop",
                "external_id": external,
            },
            headers=WRITE,
        )
        assert again.status_code == 409
        assert again.json()["existing_order_id"] == first["id"]

    async def test_a_retried_post_returns_the_same_order(self, client):
        tea = await product(client)
        body = {
            "customer_id": str(uuid.uuid4()),
            "currency": "EUR",
            "channel": "physical_store",
            "lines": [{"product_id": tea, "quantity": 2}],
        }
        headers = {**WRITE, "Idempotency-Key": str(uuid.uuid4())}
        first = await client.post("/orders", json=body, headers=headers)
        second = await client.post("/orders", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.json()["id"] == first.json()["id"]
        listed = await client.get(f"/orders?customer_id={body['customer_id']}", headers=WRITE)
        assert len(listed.json()["items"]) == 1


class TestLifecycle:
    async def test_pay_fulfil_partially_refund_then_refund_the_rest(self, client, app):
        tea = await product(client, price="10.00")
        order = await place(client, [{"product_id": tea, "quantity": 2}])
        url = f"/orders/{order['id']}"
        over = await client.post(
            f"{url}/payments", json={"amount": "20.01", "method": "card"}, headers=WRITE
        )
        assert over.status_code == 409
        early_refund = await client.post(f"{url}/refunds", json={"amount": "1.00"}, headers=WRITE)
        assert early_refund.status_code == 409
        for amount in ("5.00", "15.00"):
            paid = await client.post(
                f"{url}/payments", json={"amount": amount, "method": "card"}, headers=WRITE
            )
            assert paid.status_code == 201
        assert (await client.get(url, headers=WRITE)).json()["status"] == "paid"
        fulfilled = await client.post(f"{url}/status", json={"status": "fulfilled"}, headers=WRITE)
        assert fulfilled.json()["status"] == "fulfilled"
        partial = await client.post(f"{url}/refunds", json={"amount": "7.50"}, headers=WRITE)
        assert partial.status_code == 201
        too_much = await client.post(f"{url}/refunds", json={"amount": "12.51"}, headers=WRITE)
        assert too_much.status_code == 409
        assert too_much.json()["refundable"] == "12.50"
        rest = await client.post(f"{url}/refunds", json={"amount": "12.50"}, headers=WRITE)
        assert rest.status_code == 201
        final = (await client.get(url, headers=WRITE)).json()
        assert (final["status"], final["paid_total"], final["refunded_total"]) == (
            "refunded",
            "20.00",
            "20.00",
        )
        assert [
            (e["type"].split(".")[2], e.get("status")) for e in await events(app, order["id"])
        ] == [
            ("placed", None),
            ("status_changed", "paid"),
            ("status_changed", "fulfilled"),
            ("status_changed", "partially_refunded"),
            ("status_changed", "refunded"),
        ]

    async def test_illegal_transitions_answer_409_with_the_allowed_moves(self, client):
        tea = await product(client)
        order = await place(client, [{"product_id": tea, "quantity": 1}])
        url = f"/orders/{order['id']}"
        fulfil = await client.post(f"{url}/status", json={"status": "fulfilled"}, headers=WRITE)
        assert fulfil.status_code == 409
        assert fulfil.json()["allowed"] == ["cancelled"]
        cancel = await client.post(f"{url}/status", json={"status": "cancelled"}, headers=WRITE)
        assert cancel.json()["status"] == "cancelled"
        pay = await client.post(
            f"{url}/payments", json={"amount": "1.00", "method": "cash"}, headers=WRITE
        )
        assert pay.status_code == 409
        assert (await client.get(f"/orders/{uuid.uuid4()}", headers=WRITE)).status_code == 404

    async def test_concurrent_refunds_never_exceed_the_payment(self, app):
        async with api_client(app, rollback=False) as real:
            tea = await product(real, price="10.00")
            order = await place(real, [{"product_id": tea, "quantity": 1}])
            url = f"/orders/{order['id']}"
            await real.post(
                f"{url}/payments", json={"amount": "10.00", "method": "card"}, headers=WRITE
            )
            answers = await asyncio.gather(
                *(
                    real.post(f"{url}/refunds", json={"amount": "4.00"}, headers=WRITE)
                    for _ in range(5)
                )
            )
            assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409]
            final = (await real.get(url, headers=WRITE)).json()
            assert final["refunded_total"] == "8.00"


async def test_a_rep_sees_only_orders_of_customers_in_their_scope(client, app):
    tea = await product(client)
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    async with app.state.database.session() as session:
        for customer, owner in ((mine, "rep-1"), (theirs, "rep-2")):
            await session.execute(
                text("INSERT INTO orders.customer_scope (customer_id, owner_id) VALUES (:c, :o)"),
                {"c": customer, "o": owner},
            )
    a = await place(client, [{"product_id": tea, "quantity": 1}], customer_id=mine)
    b = await place(client, [{"product_id": tea, "quantity": 1}], customer_id=theirs)
    rep = bearer("orders:read", subject="rep-1", scope_mode="own")
    listed = await client.get("/orders?limit=200", headers=rep)
    ids = {o["id"] for o in listed.json()["items"]}
    assert a["id"] in ids
    assert b["id"] not in ids
    assert (await client.get(f"/orders/{b['id']}", headers=rep)).status_code == 404
    assert (await client.get(f"/orders/{a['id']}", headers=rep)).status_code == 200
