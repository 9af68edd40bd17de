"""Promotions and coupons through the orders API: exact discounts worked out by hand, every
refusal with its problem type, issued codes, release on cancel/refund, and parallel orders
racing for the same code."""

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
ADMIN = bearer("orders:read", "orders:write", "admin")
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def product(client, price: str, category: str | None = None, currency="EUR") -> str:
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


async def promotion(client, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Promo")
    body.setdefault("currency", "EUR")
    response = await client.post("/promotions", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


def code() -> str:
    return f"T-{uuid.uuid4().hex[:12].upper()}"


async def order(client, lines, customer_id=None, **body: Any):
    return await client.post(
        "/orders",
        json={
            "customer_id": str(customer_id or uuid.uuid4()),
            "currency": body.pop("currency", "EUR"),
            "channel": "online_store",
            "lines": lines,
            **body,
        },
        headers=WRITE,
    )


async def events_of(app, customer_id: str, ce_type: str) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = await session.execute(text("SELECT headers, payload FROM orders.outbox ORDER BY id"))
        found = []
        for row in rows:
            payload = json.loads(row.payload)
            if (
                payload.get("customer_id") == customer_id
                and dict(row.headers)["ce_type"] == ce_type
            ):
                found.append(payload)
        return found


class TestRedemption:
    async def test_a_category_percentage_discounts_only_matching_lines(self, client, app):
        tea, mug = await product(client, "10.00", "tea"), await product(client, "25.00", "mugs")
        c = code()
        promo = await promotion(
            client, kind="percentage", value="15", min_spend="40.00", categories=["tea"], code=c
        )
        customer = str(uuid.uuid4())
        response = await order(
            client,
            [
                {"product_id": tea, "quantity": 3, "tax_rate": "0.19"},
                {"product_id": mug, "quantity": 1, "tax_rate": "0.19"},
            ],
            customer_id=customer,
            coupon_codes=[c],
        )
        assert response.status_code == 201, response.text
        placed = response.json()
        # tea: 30.00 - 4.50 = 25.50, tax 4.845 -> 4.84 (half to even), total 30.34
        # mug: 25.00, tax 4.75, total 29.75
        assert [
            (li["discount"], li["promotion_discount"], li["tax"], li["total"])
            for li in placed["lines"]
        ] == [
            ("4.50", "4.50", "4.84", "30.34"),
            ("0.00", "0.00", "4.75", "29.75"),
        ]
        assert (
            placed["subtotal"],
            placed["discount_total"],
            placed["tax_total"],
            placed["total"],
        ) == (
            "55.00",
            "4.50",
            "9.59",
            "60.09",
        )
        assert placed["discounts"] == [
            {
                "kind": "coupon",
                "code": c,
                "promotion_id": promo["id"],
                "points": None,
                "amount": "4.50",
                "status": "active",
            }
        ]
        (event,) = await events_of(app, customer, "rapport.order.placed.v1")
        assert event["discount_total"] == "4.50"
        assert event["coupons"] == [{"code": c, "promotion_id": promo["id"], "amount": "4.50"}]
        assert event["points_redeemed"] == 0
        assert (await client.get(f"/promotions/{promo['id']}", headers=WRITE)).json()["uses"] == 1

    async def test_a_fixed_amount_spreads_over_the_lines_and_stacks_with_line_discounts(
        self, client
    ):
        tea, mug = await product(client, "10.00"), await product(client, "25.00")
        c = code()
        await promotion(client, kind="fixed", value="10.00", code=c)
        response = await order(
            client,
            [
                {"product_id": tea, "quantity": 3, "discount": "2.00", "tax_rate": "0.19"},
                {"product_id": mug, "quantity": 1, "tax_rate": "0.19"},
            ],
            coupon_codes=[c],
        )
        assert response.status_code == 201, response.text
        placed = response.json()
        # nets 28.00 and 25.00; 10.00 -> 5.28 (5.283) and 4.72 (4.716): remainders pick mug
        # tea: 28.00 - 5.28 = 22.72, tax 4.3168 -> 4.32, total 27.04
        # mug: 25.00 - 4.72 = 20.28, tax 3.8532 -> 3.85, total 24.13
        assert [
            (li["discount"], li["promotion_discount"], li["total"]) for li in placed["lines"]
        ] == [
            ("7.28", "5.28", "27.04"),
            ("4.72", "4.72", "24.13"),
        ]
        assert (placed["discount_total"], placed["tax_total"], placed["total"]) == (
            "12.00",
            "8.17",
            "51.17",
        )

    async def test_an_order_fully_paid_by_coupon_is_paid_at_once(self, client):
        tea = await product(client, "5.00")
        c = code()
        await promotion(client, kind="fixed", value="20.00", code=c)
        placed = (
            await order(client, [{"product_id": tea, "quantity": 1}], coupon_codes=[c])
        ).json()
        assert (placed["total"], placed["discount_total"], placed["status"]) == (
            "0.00",
            "5.00",
            "paid",
        )

    @pytest.mark.parametrize(
        ("promo", "slug"),
        [
            ({"starts_at": "2099-01-01T00:00:00Z"}, "coupon-not-started"),
            (
                {"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2021-01-01T00:00:00Z"},
                "coupon-expired",
            ),
            ({"min_spend": "100.00"}, "coupon-min-spend-unmet"),
            ({"categories": ["garden"]}, "coupon-no-eligible-lines"),
            ({"currency": "USD", "value": "1.00"}, "coupon-currency-mismatch"),
        ],
    )
    async def test_each_reason_to_refuse_is_its_own_problem(self, client, promo, slug):
        tea = await product(client, "10.00", "tea")
        c = code()
        await promotion(client, **{"kind": "fixed", "value": "1.00", "code": c, **promo})
        response = await order(client, [{"product_id": tea, "quantity": 1}], coupon_codes=[c])
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["type"] == f"/problems/{slug}"
        assert problem["code"] == c
        assert problem["errors"][0]["pointer"] == "/body/coupon_codes/0"

    async def test_unknown_inactive_twice_and_exhausted_codes(self, client):
        tea = await product(client, "10.00")
        line = [{"product_id": tea, "quantity": 1}]
        unknown = await order(client, line, coupon_codes=["NO-SUCH-CODE"])
        assert unknown.json()["type"] == "/problems/coupon-unknown"
        c = code()
        promo = await promotion(client, kind="fixed", value="1.00", code=c, total_limit=1)
        twice = await order(client, line, coupon_codes=[c, c])
        assert twice.json()["type"] == "/problems/coupon-applied-twice"
        assert twice.json()["errors"][0]["pointer"] == "/body/coupon_codes/1"
        assert (await order(client, line, coupon_codes=[c])).status_code == 201
        exhausted = await order(client, line, coupon_codes=[c])
        assert exhausted.json()["type"] == "/problems/coupon-exhausted"
        off = await client.patch(
            f"/promotions/{promo['id']}", json={"active": False}, headers=ADMIN
        )
        assert off.json()["active"] is False
        assert (await order(client, line, coupon_codes=[c])).json()[
            "type"
        ] == "/problems/coupon-inactive"
        # a refused order leaves nothing behind: one use, as before
        assert (await client.get(f"/promotions/{promo['id']}", headers=WRITE)).json()["uses"] == 1

    async def test_per_customer_limit(self, client):
        tea = await product(client, "10.00")
        c = code()
        await promotion(client, kind="percentage", value="10", code=c, per_customer_limit=2)
        customer = uuid.uuid4()
        line = [{"product_id": tea, "quantity": 1}]
        for _ in range(2):
            assert (await order(client, line, customer, coupon_codes=[c])).status_code == 201
        third = await order(client, line, customer, coupon_codes=[c])
        assert third.json()["type"] == "/problems/coupon-customer-limit-reached"
        assert (await order(client, line, coupon_codes=[c])).status_code == 201  # someone else

    async def test_issued_codes_are_per_recipient_and_idempotent(self, client):
        tea = await product(client, "10.00")
        promo = await promotion(client, kind="percentage", value="20")
        alice, bob = uuid.uuid4(), uuid.uuid4()
        url = f"/promotions/{promo['id']}/codes:issue"
        first = await client.post(url, json={"customer_ids": [str(alice), str(bob)]}, headers=ADMIN)
        assert first.status_code == 200, first.text
        codes = {i["customer_id"]: i["code"] for i in first.json()["codes"]}
        assert [i["created"] for i in first.json()["codes"]] == [True, True]
        again = await client.post(url, json={"customer_ids": [str(alice)]}, headers=ADMIN)
        assert again.json()["codes"] == [
            {"customer_id": str(alice), "code": codes[str(alice)], "created": False}
        ]
        line = [{"product_id": tea, "quantity": 1}]
        wrong = await order(client, line, bob, coupon_codes=[codes[str(alice)]])
        assert wrong.json()["type"] == "/problems/coupon-wrong-customer"
        used = await order(client, line, alice, coupon_codes=[codes[str(alice)]])
        assert used.json()["total"] == "8.00"
        reuse = await order(client, line, alice, coupon_codes=[codes[str(alice)]])
        assert reuse.json()["type"] == "/problems/coupon-exhausted"
        looked_up = (await client.get(f"/coupons/{codes[str(alice)]}", headers=WRITE)).json()
        assert (looked_up["customer_id"], looked_up["uses"], looked_up["max_uses"]) == (
            str(alice),
            1,
            1,
        )
        assert (await client.get("/coupons/NOPE-NOPE", headers=WRITE)).status_code == 404
        forbidden = await client.post(url, json={"customer_ids": [str(alice)]}, headers=WRITE)
        assert forbidden.status_code == 403

    async def test_cancel_and_full_refund_release_the_coupon_partial_refund_keeps_it(self, client):
        tea = await product(client, "10.00")
        c = code()
        promo = await promotion(client, kind="fixed", value="1.00", code=c, total_limit=1)
        line = [{"product_id": tea, "quantity": 2}]
        uses = lambda: client.get(f"/promotions/{promo['id']}", headers=WRITE)  # noqa: E731

        first = (await order(client, line, coupon_codes=[c])).json()
        assert (await uses()).json()["uses"] == 1
        cancelled = await client.post(
            f"/orders/{first['id']}/status", json={"status": "cancelled"}, headers=WRITE
        )
        assert cancelled.json()["discounts"][0]["status"] == "released"
        assert (await uses()).json()["uses"] == 0

        second = (await order(client, line, coupon_codes=[c])).json()
        assert second["total"] == "19.00"
        url = f"/orders/{second['id']}"
        await client.post(
            f"{url}/payments", json={"amount": "19.00", "method": "card"}, headers=WRITE
        )
        await client.post(f"{url}/refunds", json={"amount": "9.00"}, headers=WRITE)
        assert (await uses()).json()["uses"] == 1  # partial refund: still redeemed
        await client.post(f"{url}/refunds", json={"amount": "10.00"}, headers=WRITE)
        assert (await uses()).json()["uses"] == 0
        assert (await client.get(url, headers=WRITE)).json()["discounts"][0]["status"] == "released"
        assert (await order(client, line, coupon_codes=[c])).status_code == 201

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"kind": "percentage", "value": "150"}, "/body"),
            ({"kind": "fixed", "value": "1.005"}, "/body"),
            ({"kind": "fixed", "value": 1.5}, "/body/value"),
            ({"kind": "fixed", "value": "1.00", "code": "lower case"}, "/body/code"),
            (
                {
                    "kind": "fixed",
                    "value": "1.00",
                    "starts_at": "2026-02-01T00:00:00Z",
                    "ends_at": "2026-01-01T00:00:00Z",
                },
                "/body",
            ),
            ({"kind": "bogo", "value": "1"}, "/body/kind"),
            ({"kind": "fixed", "value": "1.00", "currency": "ABC"}, "/body/currency"),
        ],
    )
    async def test_bad_promotions_are_refused_at_the_edge(self, client, body, pointer):
        response = await client.post(
            "/promotions", json={"name": "x", "currency": "EUR", **body}, headers=ADMIN
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == pointer

    async def test_a_shared_code_is_taken_once(self, client):
        c = code()
        await promotion(client, kind="fixed", value="1.00", code=c)
        again = await client.post(
            "/promotions",
            json={"name": "x", "kind": "fixed", "value": "1.00", "currency": "EUR", "code": c},
            headers=ADMIN,
        )
        assert (again.status_code, again.json()["type"]) == (409, "/problems/coupon-code-taken")


class TestConcurrency:
    async def test_a_single_use_code_is_redeemed_once_by_20_parallel_orders(self, app):
        async with api_client(app, rollback=False) as real:
            tea = await product(real, "10.00")
            promo = await promotion(real, kind="percentage", value="50")
            customer = uuid.uuid4()
            issued = await real.post(
                f"/promotions/{promo['id']}/codes:issue",
                json={"customer_ids": [str(customer)]},
                headers=ADMIN,
            )
            c = issued.json()["codes"][0]["code"]
            answers = await asyncio.gather(
                *(
                    order(real, [{"product_id": tea, "quantity": 1}], customer, coupon_codes=[c])
                    for _ in range(20)
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] + [422] * 19
            assert {a.json()["type"] for a in answers if a.status_code == 422} == {
                "/problems/coupon-exhausted"
            }
            (won,) = [a.json() for a in answers if a.status_code == 201]
            assert won["total"] == "5.00"
            assert (await real.get(f"/coupons/{c}", headers=WRITE)).json()["uses"] == 1

    async def test_a_total_limit_of_n_admits_exactly_n_of_20_parallel_orders(self, app):
        async with api_client(app, rollback=False) as real:
            tea = await product(real, "10.00")
            c = code()
            promo = await promotion(real, kind="fixed", value="1.00", code=c, total_limit=7)
            answers = await asyncio.gather(
                *(
                    order(real, [{"product_id": tea, "quantity": 1}], coupon_codes=[c])
                    for _ in range(20)
                )
            )
            assert sorted(a.status_code for a in answers) == [201] * 7 + [422] * 13
            assert (await real.get(f"/promotions/{promo['id']}", headers=WRITE)).json()["uses"] == 7
            async with app.state.database.session() as session:
                rows = await session.scalar(
                    text(
                        "SELECT count(*) FROM orders.order_discount"
                        " WHERE promotion_id = :p AND status = 'active'"
                    ),
                    {"p": promo["id"]},
                )
            assert rows == 7


async def test_the_problem_types_are_documented_on_order_creation(app):
    # The order endpoint lists 422; every coupon problem is a 422 problem+json.
    spec = app.openapi()
    assert "422" in spec["paths"]["/orders"]["post"]["responses"]
    schema = spec["components"]["schemas"]["OrderCreate"]["properties"]
    assert "coupon_codes" in schema
    assert "loyalty_points" in schema


async def test_two_coupons_stack_on_what_the_first_left(client):
    tea, mug = await product(client, "4.00", "tea"), await product(client, "20.00", "mugs")
    first, second = code(), code()
    await promotion(client, kind="fixed", value="10.00", categories=["tea"], code=first)
    await promotion(client, kind="percentage", value="10", code=second)
    response = await order(
        client,
        [{"product_id": tea, "quantity": 1}, {"product_id": mug, "quantity": 1}],
        coupon_codes=[first, second],
    )
    assert response.status_code == 201, response.text
    placed = response.json()
    # first: 4.00 off the tea (all of it); second: 10 % of what is left (mug 20.00 -> 2.00)
    assert [li["promotion_discount"] for li in placed["lines"]] == ["4.00", "2.00"]
    assert [d["amount"] for d in placed["discounts"]] == ["4.00", "2.00"]
    assert placed["total"] == "18.00"
    # a tea-only coupon after the tea is already free has nothing left to take
    third = code()
    await promotion(client, kind="percentage", value="50", categories=["tea"], code=third)
    none_left = await order(
        client, [{"product_id": tea, "quantity": 1}], coupon_codes=[first, third]
    )
    assert none_left.json()["type"] == "/problems/coupon-no-eligible-lines"
    assert none_left.json()["errors"][0]["pointer"] == "/body/coupon_codes/1"
