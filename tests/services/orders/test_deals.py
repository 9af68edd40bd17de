"""The sales pipeline: stages (admin), deals and their history, winning into an order,
events, the summary that evaluates reps, and merge/erase."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from services.orders.config import Settings
from services.orders.main import create_app
from services.orders.subscriptions import subscriptions
from shared.events import CustomerErased, CustomerMerged, Envelope
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("orders:read", "orders:write", subject="rep-a")
ADMIN = bearer("orders:read", "orders:write", "admin", subject="boss")
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def stages(client, *probabilities: str) -> list[dict[str, Any]]:
    """Fresh stages, positioned before any other test's (which are rolled back anyway)."""
    suffix = uuid.uuid4().hex[:6]
    made = []
    for position, probability in enumerate(probabilities):
        response = await client.post(
            "/pipeline/stages",
            json={
                "name": f"Stage {position} {suffix}",
                "position": position,
                "probability": probability,
            },
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        made.append(dict(response.json()))
    return made


async def deal(client, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/deals",
        json={
            "customer_id": str(uuid.uuid4()),
            "title": "Mugs",
            "amount": "100.00",
            "currency": "EUR",
            **body,
        },
        headers=body.pop("headers", WRITE),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def events(app, deal_id: str) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = await session.execute(text("SELECT headers, payload FROM orders.outbox ORDER BY id"))
        return [
            {"type": dict(r.headers)["ce_type"], **json.loads(r.payload)}
            for r in rows
            if json.loads(r.payload).get("deal_id") == deal_id
        ]


class TestStages:
    async def test_admins_configure_ordered_stages_and_others_may_not(self, client):
        made = await stages(client, "0.1", "0.5")
        listed = (await client.get("/pipeline/stages", headers=WRITE)).json()
        assert [s["id"] for s in listed][:2] == [made[0]["id"], made[1]["id"]]
        assert listed[1]["probability"] == "0.5000"
        refused = await client.post(
            "/pipeline/stages",
            json={"name": "x", "position": 9, "probability": "0.5"},
            headers=WRITE,
        )
        assert refused.status_code == 403
        taken = await client.post(
            "/pipeline/stages",
            json={"name": made[0]["name"], "position": 5, "probability": "0.2"},
            headers=ADMIN,
        )
        assert taken.status_code == 409
        assert taken.json()["type"] == "/problems/pipeline-stage-name-taken"
        bad = await client.post(
            "/pipeline/stages",
            json={"name": "y", "position": 1, "probability": "1.5"},
            headers=ADMIN,
        )
        assert bad.status_code == 422
        moved = await client.patch(
            f"/pipeline/stages/{made[1]['id']}",
            json={"probability": "0.75", "position": 7},
            headers=ADMIN,
        )
        assert (moved.json()["probability"], moved.json()["position"]) == ("0.7500", 7)

    async def test_a_stage_that_holds_deals_cannot_be_deleted(self, client):
        used, empty = await stages(client, "0.1", "0.2")
        await deal(client, stage_id=used["id"])
        refused = await client.delete(f"/pipeline/stages/{used['id']}", headers=ADMIN)
        assert refused.status_code == 409
        assert refused.json()["type"] == "/problems/pipeline-stage-in-use"
        assert (
            await client.delete(f"/pipeline/stages/{empty['id']}", headers=ADMIN)
        ).status_code == 204
        assert (
            await client.delete(f"/pipeline/stages/{empty['id']}", headers=ADMIN)
        ).status_code == 404


class TestDeals:
    async def test_a_deal_moves_through_stages_is_won_into_an_order_with_history_and_events(
        self, app, client
    ):
        first, second = await stages(client, "0.2", "0.6")
        product = await client.post(
            "/products",
            json={
                "sku": f"D-{uuid.uuid4().hex[:8]}",
                "name": "Mug",
                "price": "12.90",
                "currency": "EUR",
            },
            headers=WRITE,
        )
        opened = await deal(client, amount="2580.00", expected_close_date="2026-12-15")
        assert (opened["stage_id"], opened["owner_id"], opened["status"]) == (
            first["id"],
            "rep-a",
            "open",
        )
        url = f"/deals/{opened['id']}"
        moved = await client.post(f"{url}/stage", json={"stage_id": second["id"]}, headers=WRITE)
        assert moved.json()["stage_id"] == second["id"]
        won = await client.post(
            f"{url}/won",
            json={"order": {"lines": [{"product_id": product.json()["id"], "quantity": 200}]}},
            headers=WRITE,
        )
        assert won.status_code == 200, won.text
        assert won.json()["status"] == "won"
        order = (await client.get(f"/orders/{won.json()['order_id']}", headers=WRITE)).json()
        assert (order["customer_id"], order["total"], order["channel"]) == (
            opened["customer_id"],
            "2580.00",
            "sales_rep",
        )
        history = (await client.get(f"{url}/history", headers=WRITE)).json()
        assert [
            (h["from_stage_id"], h["to_stage_id"], h["from_status"], h["to_status"])
            for h in history
        ] == [
            (None, first["id"], None, "open"),
            (first["id"], second["id"], "open", "open"),
            (second["id"], second["id"], "open", "won"),
        ]
        assert {h["changed_by"] for h in history} == {"rep-a"}
        assert [(e["type"], e.get("probability")) for e in await events(app, opened["id"])] == [
            ("rapport.order.deal_stage_changed.v1", "0.2000"),
            ("rapport.order.deal_stage_changed.v1", "0.6000"),
            ("rapport.order.deal_won.v1", None),
        ]
        again = await client.post(f"{url}/stage", json={"stage_id": first["id"]}, headers=WRITE)
        assert again.status_code == 409
        assert again.json()["type"] == "/problems/deal-closed"

    async def test_a_won_order_in_another_currency_is_refused_and_nothing_is_written(
        self, app, client
    ):
        await stages(client, "0.5")
        yen = await client.post(
            "/products",
            json={
                "sku": f"Y-{uuid.uuid4().hex[:8]}",
                "name": "Mug",
                "price": "500",
                "currency": "JPY",
            },
            headers=WRITE,
        )
        opened = await deal(client)
        url = f"/deals/{opened['id']}/won"
        lines = [{"product_id": yen.json()["id"], "quantity": 1}]
        mismatch = await client.post(
            url, json={"order": {"currency": "JPY", "lines": lines}}, headers=WRITE
        )
        assert mismatch.status_code == 409
        assert mismatch.json()["type"] == "/problems/currency-mismatch"
        priced = await client.post(url, json={"order": {"lines": lines}}, headers=WRITE)
        assert priced.status_code == 422
        assert "priced in JPY" in priced.json()["errors"][0]["detail"]
        assert (await client.get(f"/deals/{opened['id']}", headers=WRITE)).json()[
            "status"
        ] == "open"
        assert [e["type"] for e in await events(app, opened["id"])] == [
            "rapport.order.deal_stage_changed.v1"
        ]

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"amount": "10.001"}, "/body/amount"),
            ({"amount": "10.5", "currency": "JPY"}, "/body/amount"),
            ({"amount": 10.5}, "/body/amount"),
            ({"amount": "-1"}, "/body/amount"),
            ({"currency": "EURO"}, "/body/currency"),
            ({"stage_id": str(uuid.uuid4())}, "/body/stage_id"),
        ],
    )
    async def test_bad_deals_answer_422_pointing_at_the_field(self, client, body, pointer):
        await stages(client, "0.5")
        response = await client.post(
            "/deals",
            json={
                "customer_id": str(uuid.uuid4()),
                "title": "x",
                "amount": "1.00",
                "currency": "EUR",
                **body,
            },
            headers=WRITE,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        assert pointer in {e["pointer"] for e in response.json()["errors"]}

    async def test_a_retried_create_returns_the_same_deal(self, client):
        await stages(client, "0.5")
        body = {
            "customer_id": str(uuid.uuid4()),
            "title": "Once",
            "amount": "5.00",
            "currency": "EUR",
        }
        headers = {**WRITE, "Idempotency-Key": str(uuid.uuid4())}
        first = await client.post("/deals", json=body, headers=headers)
        second = await client.post("/deals", json=body, headers=headers)
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.json()["id"] == first.json()["id"]
        assert second.headers["idempotent-replayed"] == "true"
        listed = await client.get(f"/deals?customer_id={body['customer_id']}", headers=WRITE)
        assert len(listed.json()["items"]) == 1

    async def test_edits_check_the_version_and_the_currency(self, client):
        await stages(client, "0.5")
        opened = await deal(client)
        url = f"/deals/{opened['id']}"
        etag = (await client.get(url, headers=WRITE)).headers["etag"]
        edited = await client.patch(
            url, json={"amount": "120000", "currency": "JPY"}, headers={**WRITE, "If-Match": etag}
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["amount"], edited.json()["currency"]) == ("120000", "JPY")
        stale = await client.patch(url, json={"title": "y"}, headers={**WRITE, "If-Match": etag})
        assert stale.status_code == 412
        fraction = await client.patch(url, json={"amount": "1.5"}, headers=WRITE)
        assert fraction.status_code == 422
        lost = await client.post(f"{url}/lost", json={"reason": "budget"}, headers=WRITE)
        assert (lost.json()["status"], lost.json()["lost_reason"]) == ("lost", "budget")
        closed = await client.patch(url, json={"title": "z"}, headers=WRITE)
        assert closed.status_code == 409


async def test_the_summary_evaluates_each_rep(app, client):
    # GBP keeps other tests' deals out of the figures.
    cold, warm = await stages(client, "0.1", "0.5")
    made = {}
    for key, owner, amount, stage in (
        ("w1", "ann", "100.00", warm),
        ("w2", "ann", "300.00", cold),
        ("l1", "ann", "50.00", cold),
        ("o1", "ann", "40.00", cold),
        ("o2", "bob", "60.00", warm),
        ("l2", "bob", "70.00", warm),
    ):
        made[key] = await deal(
            client, owner_id=owner, amount=amount, currency="GBP", stage_id=stage["id"]
        )
    for key in ("w1", "w2"):
        await client.post(f"/deals/{made[key]['id']}/won", json={}, headers=WRITE)
    for key in ("l1", "l2"):
        await client.post(f"/deals/{made[key]['id']}/lost", json={}, headers=WRITE)
    # Cycle times: w1 took 10 days, w2 20 days.
    async with app.state.database.session() as session:
        for key, days in (("w1", 10), ("w2", 20)):
            await session.execute(
                text(
                    "UPDATE orders.deal SET created_at = closed_at - make_interval(days => :d) "
                    "WHERE id = :id"
                ),
                {"d": days, "id": made[key]["id"]},
            )
    body = (await client.get("/pipeline/summary?currency=GBP", headers=WRITE)).json()
    mine = {s["stage_id"]: s for s in body["stages"]}
    assert (
        mine[cold["id"]]["deals"],
        mine[cold["id"]]["amount"],
        mine[cold["id"]]["weighted"],
    ) == (
        1,
        "40.00",
        "4.00",
    )
    assert (
        mine[warm["id"]]["deals"],
        mine[warm["id"]]["amount"],
        mine[warm["id"]]["weighted"],
    ) == (
        1,
        "60.00",
        "30.00",
    )
    assert (body["open_deals"], body["open_amount"], body["weighted_amount"]) == (
        2,
        "100.00",
        "34.00",
    )
    owners = {o["owner_id"]: o for o in body["owners"]}
    assert owners["ann"] == {
        "owner_id": "ann",
        "open_deals": 1,
        "open_amount": "40.00",
        "won": 2,
        "won_amount": "400.00",
        "lost": 1,
        "win_rate": "0.6667",
        "average_cycle_days": "15.00",
    }
    assert (
        owners["bob"]["won"],
        owners["bob"]["win_rate"],
        owners["bob"]["average_cycle_days"],
    ) == (
        0,
        "0.0000",
        None,
    )
    later = await client.get(
        "/pipeline/summary?currency=GBP&closed_after=2100-01-01T00:00:00Z", headers=WRITE
    )
    assert {o["owner_id"]: o["won"] for o in later.json()["owners"]} == {"ann": 0, "bob": 0}


async def test_merge_repoints_and_erase_anonymises_deals(app, client):
    await stages(client, "0.5")
    survivor, duplicate = uuid.uuid4(), uuid.uuid4()
    kept = await deal(
        client, customer_id=str(duplicate), title="Mugs for Wei Zhang", amount="99.90"
    )
    await client.post(f"/deals/{kept['id']}/lost", json={"reason": "Wei moved"}, headers=WRITE)
    now = datetime.now(UTC)

    async def handle(event) -> None:  # type: ignore[no-untyped-def]
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None
        async with app.state.database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/test"))

    await handle(
        CustomerMerged(customer_id=survivor, merged_id=duplicate, merged_by="u", merged_at=now)
    )
    listed = (await client.get(f"/deals?customer_id={survivor}", headers=WRITE)).json()["items"]
    assert [d["id"] for d in listed] == [kept["id"]]
    await handle(CustomerErased(customer_id=survivor, erased_at=now))
    erased = (await client.get(f"/deals/{kept['id']}", headers=WRITE)).json()
    assert (erased["title"], erased["lost_reason"], erased["amount"], erased["status"]) == (
        "(erased)",
        None,
        "99.90",
        "lost",
    )
