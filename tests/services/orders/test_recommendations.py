"""Recommendations on a small dataset whose scores are worked out by hand.

Customers and what they bought (products 1-4):

    A: {1, 2}   B: {1, 2, 3}   C: {2, 3}   D: {1, 4}

buyers: 1 -> 3 (A, B, D), 2 -> 3 (A, B, C), 3 -> 2 (B, C), 4 -> 1 (D)
co-purchases: (1,2) 2 (A, B); (1,3) 1 (B); (2,3) 2 (B, C); (1,4) 1 (D)
cosine: sim(1,2) = 2/sqrt(3*3) = 0.666667; sim(1,3) = 1/sqrt(3*2) = 0.408248;
        sim(2,3) = 2/sqrt(3*2) = 0.816497; sim(1,4) = 1/sqrt(3*1) = 0.577350

A (has 1, 2): 3 -> sim(1,3) + sim(2,3) = 3/sqrt(6) = 1.224745; 4 -> sim(1,4) = 0.577350
D (has 1, 4): 2 -> sim(1,2) = 0.666667; 3 -> sim(1,3) = 0.408248
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.orders.config import Settings
from services.orders.main import create_app
from services.orders.subscriptions import subscriptions
from shared.events import CustomerMerged, Envelope
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("orders:read", "orders:write")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def dataset(client) -> tuple[dict[int, str], dict[str, str]]:
    products = {}
    for n in (1, 2, 3, 4):
        response = await client.post(
            "/products",
            json={
                "sku": f"P{n}-{uuid.uuid4().hex[:8]}",
                "name": f"P{n}",
                "price": "1.00",
                "currency": "EUR",
            },
            headers=WRITE,
        )
        products[n] = response.json()["id"]
    customers = {name: str(uuid.uuid4()) for name in "ABCD"}
    # B buys in two orders: a repeat purchase of 2 must not count twice.
    bought = [("A", [1, 2]), ("B", [1, 2]), ("B", [2, 3]), ("C", [2, 3]), ("D", [1]), ("D", [4])]
    for name, items in bought:
        response = await client.post(
            "/orders",
            json={
                "customer_id": customers[name],
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": products[n], "quantity": 1} for n in items],
            },
            headers=WRITE,
        )
        assert response.status_code == 201, response.text
    return products, customers


async def recommended(client, customer: str) -> list[tuple[str, float, list[str]]]:
    response = await client.get(f"/customers/{customer}/recommendations", headers=WRITE)
    assert response.status_code == 200, response.text
    return [(i["product"]["id"], i["score"], i["because"]) for i in response.json()["items"]]


async def test_scores_rank_and_exclude_what_was_bought(client):
    p, c = await dataset(client)
    assert await recommended(client, c["A"]) == [
        (p[3], 1.224745, sorted([p[1], p[2]])),
        (p[4], 0.57735, [p[1]]),
    ]
    assert await recommended(client, c["D"]) == [(p[2], 0.666667, [p[1]]), (p[3], 0.408248, [p[1]])]
    assert await recommended(client, c["B"]) == [(p[4], 0.57735, [p[1]])]
    assert await recommended(client, str(uuid.uuid4())) == []
    top = await client.get(f"/customers/{c['A']}/recommendations?limit=1", headers=WRITE)
    assert [i["product"]["id"] for i in top.json()["items"]] == [p[3]]


async def test_a_new_purchase_updates_the_counts_at_once(client):
    p, c = await dataset(client)
    # A buys 3: now buyers(3) = 3, co(1,3) = 2, co(2,3) = 3; A's only candidate is 4,
    # sim(1,4) = 1/sqrt(3*1) is unchanged.
    await client.post(
        "/orders",
        json={
            "customer_id": c["A"],
            "currency": "EUR",
            "channel": "physical_store",
            "lines": [{"product_id": p[3], "quantity": 2}],
        },
        headers=WRITE,
    )
    assert await recommended(client, c["A"]) == [(p[4], 0.57735, [p[1]])]
    # D: 2 -> sim(1,2) = 2/3; 3 -> sim(1,3) = 2/sqrt(3*3) = 0.666667 as well; ties by SKU.
    assert [(pid, score) for pid, score, _ in await recommended(client, c["D"])] == [
        (p[2], 0.666667),
        (p[3], 0.666667),
    ]


async def test_a_merge_counts_the_two_customers_as_one(app, client):
    p, c = await dataset(client)
    event = CustomerMerged(
        customer_id=uuid.UUID(c["A"]),
        merged_id=uuid.UUID(c["D"]),
        merged_by="user-1",
        merged_at=datetime.now(UTC),
    )
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))
    # A+D = {1, 2, 4}; buyers 1 -> 2, 2 -> 3, 3 -> 2; co(1,3) = 1, co(2,3) = 2:
    # 3 -> 1/sqrt(2*2) + 2/sqrt(3*2) = 0.5 + 0.816497 = 1.316497
    assert await recommended(client, c["A"]) == [(p[3], 1.316497, sorted([p[1], p[2]]))]
    assert await recommended(client, c["D"]) == []


async def test_a_rep_gets_404_for_a_customer_outside_their_scope(client):
    _, c = await dataset(client)
    rep = bearer("orders:read", subject="rep-9", scope_mode="own")
    response = await client.get(f"/customers/{c['A']}/recommendations", headers=rep)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_incremental_counts_always_equal_a_recount_from_the_orders(app, client):
    """Random purchases (repeats, several products per order) and merges, applied one by
    one: the kept counts must equal what a batch recount of the orders gives."""
    rng = random.Random(20261123)
    products = []
    for n in range(6):
        response = await client.post(
            "/products",
            json={
                "sku": f"R{n}-{uuid.uuid4().hex[:8]}",
                "name": f"R{n}",
                "price": "1.00",
                "currency": "EUR",
            },
            headers=WRITE,
        )
        products.append(response.json()["id"])
    customers = [str(uuid.uuid4()) for _ in range(8)]
    alive = list(customers)
    for step in range(30):
        if step % 10 == 9:  # now and then two customers turn out to be one person
            merged, survivor = rng.sample(alive, 2)
            alive.remove(merged)
            event = CustomerMerged(
                customer_id=uuid.UUID(survivor),
                merged_id=uuid.UUID(merged),
                merged_by="u",
                merged_at=datetime.now(UTC),
            )
            handler = subscriptions.handler_for(event.event_type)
            assert handler is not None
            async with app.state.database.session() as session:
                await handler(session, event, Envelope.wrap(event, source="/test"))
            continue
        items = rng.sample(products, rng.randint(1, 3))
        response = await client.post(
            "/orders",
            json={
                "customer_id": rng.choice(alive),
                "currency": "EUR",
                "channel": "marketplace",
                "lines": [{"product_id": p, "quantity": 1} for p in items],
            },
            headers=WRITE,
        )
        assert response.status_code == 201

    recount = """
        WITH bought AS (
            SELECT DISTINCT o.customer_id, l.product_id
            FROM orders."order" o JOIN orders.order_line l ON l.order_id = o.id
            WHERE l.product_id = ANY(CAST(:p AS uuid[]))
        )
        SELECT 'buyers', product_id::text, NULL, count(*) FROM bought GROUP BY product_id
        UNION ALL
        SELECT 'co', a.product_id::text, b.product_id::text, count(*)
        FROM bought a JOIN bought b
          ON a.customer_id = b.customer_id AND a.product_id <> b.product_id
        GROUP BY a.product_id, b.product_id
    """
    kept = """
        SELECT 'buyers', product_id::text, NULL, customers FROM orders.product_buyers
        WHERE product_id = ANY(CAST(:p AS uuid[])) AND customers > 0
        UNION ALL
        SELECT 'co', product_id::text, other_id::text, customers FROM orders.co_purchase
        WHERE product_id = ANY(CAST(:p AS uuid[])) AND customers > 0
    """
    async with app.state.database.session() as session:
        expected = set((await session.execute(text(recount), {"p": products})).all())
        found = set((await session.execute(text(kept), {"p": products})).all())
    assert len(expected) > 6
    assert found == expected
