"""Analytics end to end inside segmentation: order events → history → scores → API/events.

The population is made empty at the start of each test (inside the test's transaction, which
is rolled back), so the population-relative quintiles are exactly the hand-computed ones.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import delete, select, text

from services.segmentation import subscriptions as wiring
from services.segmentation.analytics import AnalyticsHandlers, Recompute
from services.segmentation.analytics.dependencies import get_clock
from services.segmentation.analytics.scoring import ScoringPolicy
from services.segmentation.config import Settings
from services.segmentation.main import create_app
from services.segmentation.models import (
    AnalyticsPass,
    CustomerOrder,
    CustomerRedirect,
    CustomerScore,
    RfmBoundary,
)
from shared.errors import PROBLEM_JSON
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerScored,
    Envelope,
    Event,
    OrderPlaced,
    OrderStatusChanged,
)
from shared.messaging import Handler
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 11, 1, tzinfo=UTC)
READ = bearer("segments:read")
ADMIN = bearer("admin", "segments:read")
ANALYTICS = AnalyticsHandlers(now=lambda: NOW, policy=ScoringPolicy())


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    app = create_app(make_settings(Settings, analytics_scheduler_enabled=False))
    app.dependency_overrides[get_clock] = lambda: lambda: NOW
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        async with app.state.database.session() as session:
            for table in (
                CustomerOrder,
                CustomerScore,
                RfmBoundary,
                CustomerRedirect,
                AnalyticsPass,
            ):
                await session.execute(delete(table))
        yield c


async def deliver(app: FastAPI, event: Event, handler: Handler | None = None) -> None:
    """Apply ``event`` as the consumer would, with the analytics on the fixed clock."""
    handlers: dict[type[Event], Handler] = {
        OrderPlaced: ANALYTICS.on_order_placed,
        OrderStatusChanged: ANALYTICS.on_order_status_changed,
        CustomerMerged: ANALYTICS.on_customer_merged,
        CustomerErased: ANALYTICS.on_customer_erased,
    }
    chosen = handler or handlers[type(event)]
    async with app.state.database.session() as session:
        await chosen(session, event, Envelope.wrap(event, source="/test"))


def placed(
    customer_id: uuid.UUID, order_id: uuid.UUID, days: int, total: str, currency: str = "EUR"
) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=order_id,
        total=Decimal(total),
        currency=currency,
        channel="online_store",
        placed_at=ago(days),
    )


def status(
    customer_id: uuid.UUID,
    order_id: uuid.UUID,
    new: str,
    at: datetime,
    *,
    total: str,
    paid: str,
    refunded: str = "0",
    previous: str = "pending",
    currency: str = "EUR",
) -> OrderStatusChanged:
    return OrderStatusChanged(
        customer_id=customer_id,
        order_id=order_id,
        status=new,
        previous_status=previous,
        changed_at=at,
        total=Decimal(total),
        paid_total=Decimal(paid),
        refunded_total=Decimal(refunded),
        currency=currency,
    )


async def buy(app: FastAPI, customer_id: uuid.UUID, days: int, amount: str, **kw: str) -> None:
    """An order placed ``days`` ago and paid in full (optionally refunded in part or
    cancelled before payment)."""
    order_id = uuid.uuid4()
    currency = kw.get("currency", "EUR")
    await deliver(app, placed(customer_id, order_id, days, amount, currency))
    if kw.get("cancelled"):
        await deliver(
            app,
            status(
                customer_id,
                order_id,
                "cancelled",
                ago(days),
                total=amount,
                paid="0",
                currency=currency,
            ),
        )
        return
    await deliver(
        app,
        status(
            customer_id, order_id, "paid", ago(days), total=amount, paid=amount, currency=currency
        ),
    )
    if refunded := kw.get("refunded"):
        await deliver(
            app,
            status(
                customer_id,
                order_id,
                "partially_refunded",
                ago(days) + timedelta(hours=1),
                total=amount,
                paid=amount,
                refunded=refunded,
                previous="paid",
            ),
        )


async def scored_events(app: FastAPI, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    async with app.state.database.session() as session:
        rows = await session.execute(
            text("SELECT headers, payload FROM segmentation.outbox WHERE key = :k ORDER BY id"),
            {"k": str(customer_id)},
        )
        return [
            json.loads(r.payload)
            for r in rows
            if dict(r.headers)["ce_type"] == CustomerScored.event_type
        ]


async def scores(client: httpx.AsyncClient, customer_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/customers/{customer_id}/scores", headers=READ)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def recompute(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/analytics:recompute?wait=true", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["state"] == "done"
    return body


async def population(app: FastAPI) -> dict[str, uuid.UUID]:
    """The five customers of the hand-computed example (see test_analytics_scoring.py).

    A: d190, d130 (refunded 25 of 75), d70, d10 — 75 each → 4 orders, net 275
    B: d80 50, d50 30                            → 2 orders, net 80
    C: d400 500                                  → 1 order,  net 500
    D: d300, d280, d260, d240 — 25 each          → 4 orders, net 100
    E: d5 40, d3 cancelled                       → 1 order,  net 40
    """
    ids = {name: uuid.uuid4() for name in "ABCDE"}
    for days in (190, 130, 70, 10):
        await buy(app, ids["A"], days, "75", **({"refunded": "25"} if days == 130 else {}))
    await buy(app, ids["B"], 80, "50")
    await buy(app, ids["B"], 50, "30")
    await buy(app, ids["C"], 400, "500")
    for days in (300, 280, 260, 240):
        await buy(app, ids["D"], days, "25")
    await buy(app, ids["E"], 5, "40")
    await buy(app, ids["E"], 3, "40", cancelled="yes")
    return ids


class TestHandComputedPopulation:
    async def test_a_batch_pass_scores_every_customer_as_computed_by_hand(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ids = await population(app)

        result = await recompute(client)

        assert result["population"] == 5
        assert result["customers_rescored"] == 5
        assert datetime.fromisoformat(result["computed_at"]) == NOW
        # Boundaries (N = 5, cut k at position k): R dates (d400, d240, d50, d10),
        # F [1, 1, 2, 4, 4] → (1, 1, 2, 4), M [40, 80, 100, 275, 500] → (40, 80, 100, 275)
        got = {name: await scores(client, cid) for name, cid in ids.items()}
        rfm = {n: (g["recency"], g["frequency"], g["monetary"]) for n, g in got.items()}
        assert rfm == {
            "A": (4, 4, 4),  # d10 > 3 date cuts; 4 orders > 1, 1, 2; 275 > 40, 80, 100
            "B": (3, 3, 2),  # d50 > d400, d240; 2 > 1, 1; 80 > 40
            "C": (1, 1, 5),  # oldest; 1 order; 500 > every cut
            "D": (2, 4, 3),  # d240 > d400; 4 > 1, 1, 2; 100 > 40, 80
            "E": (5, 1, 1),  # d5 > every cut; 1; 40 exceeds none
        }
        assert {n: g["rfm_segment"] for n, g in got.items()} == {
            "A": "loyal",  # R4 F4
            "B": "need_attention",  # R3 F3
            "C": "lost",  # R1 F1
            "D": "at_risk",  # R2 F4
            "E": "new",  # R5 F1
        }
        assert {n: g["lifecycle_stage"] for n, g in got.items()} == {
            "A": "loyal",  # 10 d since last, 4 orders
            "B": "repeat",  # 50 d, 2 orders
            "C": "churned",  # 400 d > 365
            "D": "at_risk",  # 240 d > 90
            "E": "first_time",  # 5 d, 1 counting order (the cancelled one does not count)
        }
        # churn: A I=60 x=1/6 → 0; B I=30 x=5/3 → 0.33; C I=90 x=4.4 → 1; D I=20 x=12 → 1;
        # E I=90 x=1/18 → 0
        assert {n: g["churn_risk"] for n, g in got.items()} == {
            "A": "0.00",
            "B": "0.33",
            "C": "1.00",
            "D": "1.00",
            "E": "0.00",
        }
        # predicted CLV = net + AOV * 365 / I * 3 * (1 - risk):
        # A 275 + 68.75 * 365 / 60 * 3 = 275 + 1254.6875 → 1529.69
        # B 80 + 40 * 365 / 30 * 3 * 0.67 = 80 + 978.20 → 1058.20
        # C 500 (risk 1); D 100 (risk 1); E 40 + 40 * 365 / 90 * 3 = 40 + 486.67 → 526.67
        assert {n: g["predicted_clv"] for n, g in got.items()} == {
            "A": "1529.69",
            "B": "1058.20",
            "C": "500.00",
            "D": "100.00",
            "E": "526.67",
        }
        assert {
            n: {c: Decimal(a) for c, a in g["historical_clv"].items()} for n, g in got.items()
        } == {
            "A": {"EUR": Decimal("275")},
            "B": {"EUR": Decimal("80")},
            "C": {"EUR": Decimal("500")},
            "D": {"EUR": Decimal("100")},
            "E": {"EUR": Decimal("40")},
        }
        assert {n: g["order_count"] for n, g in got.items()} == {
            "A": 4,
            "B": 2,
            "C": 1,
            "D": 4,
            "E": 1,
        }
        assert got["A"]["clv_currency"] == "EUR"
        assert datetime.fromisoformat(got["A"]["boundaries_computed_at"]) == NOW

    async def test_the_last_published_event_carries_the_stored_scores(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ids = await population(app)
        await recompute(client)

        last = (await scored_events(app, ids["B"]))[-1]

        assert last["recency"] == 3
        assert last["frequency"] == 3
        assert last["monetary"] == 2
        assert last["rfm_segment"] == "need_attention"
        assert last["lifecycle_stage"] == "repeat"
        assert Decimal(last["clv"]) == Decimal("1058.20")
        assert last["clv_currency"] == "EUR"
        assert last["churn_risk"] == 0.33

    async def test_counts_customers_per_named_group(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await population(app)
        await recompute(client)

        response = await client.get("/analytics/rfm", headers=READ)

        assert response.status_code == 200, response.text
        body = response.json()
        counts = {g["group"]: g["customers"] for g in body["groups"]}
        assert counts == {
            "champions": 0,
            "loyal": 1,
            "potential_loyalist": 0,
            "new": 1,
            "promising": 0,
            "need_attention": 1,
            "about_to_sleep": 0,
            "at_risk": 1,
            "cant_lose_them": 0,
            "hibernating": 0,
            "lost": 1,
        }
        assert body["groups"][0] == {"group": "champions", "label": "Champions", "customers": 0}
        assert body["scored_customers"] == 5
        assert body["unscored_customers"] == 0

    async def test_a_second_pass_over_an_unchanged_population_publishes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await population(app)
        await recompute(client)

        again = await recompute(client)

        assert again["customers_rescored"] == 5
        assert again["scores_published"] == 0

    async def test_a_new_order_rescores_only_its_customer_against_the_stored_boundaries(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ids = await population(app)
        await recompute(client)
        before = {name: len(await scored_events(app, cid)) for name, cid in ids.items()}

        await buy(app, ids["E"], 0, "35")

        e = await scores(client, ids["E"])
        # R: today > every date cut → 5; F: 2 > 1, 1, not 2 → 3; M: 75 > 40 only → 2
        assert (e["recency"], e["frequency"], e["monetary"]) == (5, 3, 2)
        assert e["rfm_segment"] == "potential_loyalist"  # R5 F3
        assert e["lifecycle_stage"] == "repeat"
        # I = 5 d, 0 d since → risk 0; AOV 75 / 2 = 37.5;
        # 75 + 37.5 * 365 / 5 * 3 = 75 + 8212.5 = 8287.50
        assert e["predicted_clv"] == "8287.50"
        after = {name: len(await scored_events(app, cid)) for name, cid in ids.items()}
        # placed (pending, nothing paid yet: M unchanged but F, R, group change) and paid
        # (M moves from 1 to 2): two events for E, none for anybody else
        assert after == {**before, "E": before["E"] + 2}


class TestBoundariesInSql:
    async def test_cut_points_ties_and_main_currencies_match_the_hand_computed_ones(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ids = {name: uuid.uuid4() for name in "PQRST"}
        # P: EUR d30 10; USD d20 5, d10 5 → main USD (2 orders to 1); F 3; M 10 USD
        await buy(app, ids["P"], 30, "10")
        await buy(app, ids["P"], 20, "5", currency="USD")
        await buy(app, ids["P"], 10, "5", currency="USD")
        # Q: USD d50 20 → F 1; M 20 USD
        await buy(app, ids["Q"], 50, "20", currency="USD")
        # R: EUR d40 100, d35 cancelled → F 1, last d40; M 100 EUR
        await buy(app, ids["R"], 40, "100")
        await buy(app, ids["R"], 35, "70", cancelled="yes")
        # S: EUR d15 30, d5 30 → F 2; M 60 EUR
        await buy(app, ids["S"], 15, "30")
        await buy(app, ids["S"], 5, "30")
        # T: EUR d60 10, USD d60 10 → one each at the same instant: alphabetical → EUR;
        # F 2; M 10 EUR
        await buy(app, ids["T"], 60, "10")
        await buy(app, ids["T"], 60, "10", currency="USD")

        await recompute(client)

        async with app.state.database.session() as session:
            rows = {
                (b.dimension, b.currency): (b.cuts, b.population)
                for b in await session.scalars(select(RfmBoundary))
            }
        day = {d: ago(d).date().isoformat() for d in (60, 50, 40, 10)}
        assert rows == {
            # N = 5, cut k at position k: dates d60 (T), d50 (Q), d40 (R), d10 (P), d5 (S)
            ("recency", ""): ([day[60], day[50], day[40], day[10]], 5),
            # F sorted [1, 1, 2, 2, 3] → 1, 1, 2, 2
            ("frequency", ""): (["1", "1", "2", "2"], 5),
            # EUR (R, S, T): N = 3, positions ceil(3k/5) = 1, 2, 2, 3 of [10, 60, 100]
            ("monetary", "EUR"): (["10.0000", "60.0000", "60.0000", "100.0000"], 3),
            # USD (P, Q): N = 2, positions ceil(2k/5) = 1, 1, 2, 2 of [10, 20]
            ("monetary", "USD"): (["10.0000", "10.0000", "20.0000", "20.0000"], 2),
        }
        got = {name: await scores(client, cid) for name, cid in ids.items()}
        assert {n: (g["monetary"], g["clv_currency"]) for n, g in got.items()} == {
            "P": (1, "USD"),  # 10 exceeds no USD cut
            "Q": (3, "USD"),  # 20 > 10, 10
            "R": (4, "EUR"),  # 100 > 10, 60, 60
            "S": (2, "EUR"),  # 60 > 10 only
            "T": (1, "EUR"),  # 10 exceeds none
        }
        assert {n: g["frequency"] for n, g in got.items()} == {
            "P": 5,  # 3 > 1, 1, 2, 2
            "Q": 1,
            "R": 1,
            "S": 3,  # 2 > 1, 1
            "T": 3,
        }
        assert {n: g["recency"] for n, g in got.items()} == {
            "P": 4,  # d10 > d60, d50, d40
            "Q": 2,
            "R": 3,
            "S": 5,
            "T": 1,
        }
        assert got["P"]["historical_clv"] == {"EUR": "10.0000", "USD": "10.0000"}


class TestIdempotency:
    async def test_the_same_events_twice_change_nothing_the_second_time(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer, order = uuid.uuid4(), uuid.uuid4()
        place = placed(customer, order, 2, "25")
        pay = status(customer, order, "paid", ago(2), total="25", paid="25")

        await deliver(app, place)
        await deliver(app, place)
        await deliver(app, pay)
        await deliver(app, pay)

        async with app.state.database.session() as session:
            rows = list(
                await session.scalars(
                    select(CustomerOrder).where(CustomerOrder.customer_id == customer)
                )
            )
        assert len(rows) == 1
        assert rows[0].status == "paid"
        assert rows[0].paid_total == Decimal("25")
        got = await scores(client, customer)
        assert got["order_count"] == 1
        assert got["historical_clv"] == {"EUR": "25.0000"}
        # one event for the placement, one for the payment (M changed); none for the repeats
        assert len(await scored_events(app, customer)) == 2

    async def test_a_late_older_status_change_does_not_undo_a_newer_one(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer, order = uuid.uuid4(), uuid.uuid4()
        await deliver(app, placed(customer, order, 2, "25"))
        await deliver(
            app,
            status(customer, order, "refunded", ago(1), total="25", paid="25", refunded="25"),
        )
        await deliver(app, status(customer, order, "paid", ago(2), total="25", paid="25"))

        got = await scores(client, customer)
        assert got["lifecycle_stage"] == "prospect"  # the only order was refunded
        assert got["order_count"] == 0
        assert got["historical_clv"] == {"EUR": "0.0000"}


class TestMergeAndErase:
    async def test_a_merge_moves_the_duplicates_orders_to_the_survivor(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = uuid.uuid4(), uuid.uuid4()
        await buy(app, survivor, 10, "100")
        await buy(app, duplicate, 40, "50")
        await buy(app, duplicate, 20, "50")
        merged = CustomerMerged(
            customer_id=survivor, merged_id=duplicate, merged_by="agent", merged_at=NOW
        )

        await deliver(app, merged)
        events = len(await scored_events(app, survivor))
        await deliver(app, merged)  # a redelivery changes nothing and publishes nothing

        got = await scores(client, survivor)
        # orders d40, d20, d10: I = 15 d; 10 d since → risk 0; net 200, AOV 66.67
        assert got["order_count"] == 3
        assert got["historical_clv"] == {"EUR": "200.0000"}
        assert datetime.fromisoformat(got["first_order_at"]) == ago(40)
        assert got["lifecycle_stage"] == "repeat"
        assert len(await scored_events(app, survivor)) == events
        response = await client.get(f"/customers/{duplicate}/scores", headers=READ)
        assert response.status_code == 404

        # an order event still naming the duplicate counts for the survivor
        await buy(app, duplicate, 1, "10")

        got = await scores(client, survivor)
        assert got["order_count"] == 4
        assert got["historical_clv"] == {"EUR": "210.0000"}

    async def test_an_erase_forgets_the_customers_orders_and_scores(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer, duplicate = uuid.uuid4(), uuid.uuid4()
        await buy(app, customer, 10, "100")
        await deliver(
            app,
            CustomerMerged(customer_id=customer, merged_id=duplicate, merged_by="a", merged_at=NOW),
        )

        await deliver(app, CustomerErased(customer_id=customer, erased_at=NOW))

        response = await client.get(f"/customers/{customer}/scores", headers=READ)
        assert response.status_code == 404
        async with app.state.database.session() as session:
            left = await session.scalar(
                select(CustomerOrder.order_id).where(CustomerOrder.customer_id == customer)
            )
            redirect = await session.get(CustomerRedirect, duplicate)
        assert left is None
        assert redirect is None
        body = (await client.get("/analytics/rfm", headers=READ)).json()
        assert body["scored_customers"] + body["unscored_customers"] == 0


class TestScheduler:
    async def test_a_pass_runs_only_once_the_latest_is_an_interval_old(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await population(app)
        clock = {"now": NOW}
        recompute = Recompute(
            app.state.database, ScoringPolicy(), now=lambda: clock["now"], interval_s=3600
        )

        first = await recompute.run_once(force=False, trigger="schedule")
        clock["now"] = NOW + timedelta(minutes=59)
        early = await recompute.run_once(force=False, trigger="schedule")
        clock["now"] = NOW + timedelta(hours=1)
        due = await recompute.run_once(force=False, trigger="schedule")

        assert (first.ran, early.ran, due.ran) == (True, False, True)
        assert due.computed_at == NOW + timedelta(hours=1)
        assert due.customers_rescored == 5
        # an hour later A's 10 days since the last order are 10 d 1 h: nothing visible moves
        assert due.scores_published == 0
        body = (await client.get("/analytics/rfm", headers=READ)).json()
        assert body["last_pass"] == {
            "trigger": "schedule",
            "started_at": "2026-11-01T01:00:00Z",
            "finished_at": "2026-11-01T01:00:00Z",
            "population": 5,
            "customers_rescored": 5,
            "scores_published": 0,
        }
        assert datetime.fromisoformat(body["boundaries_computed_at"]) == NOW + timedelta(hours=1)


class TestGetCustomerScores:
    async def test_a_customer_without_orders_is_a_prospect(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        created = CustomerCreated(customer_id=customer, display_name="Ada", created_at=NOW)
        handler = wiring.subscriptions.handler_for(CustomerCreated.event_type)
        assert handler is not None
        await deliver(app, created, handler)

        got = await scores(client, customer)

        assert got["lifecycle_stage"] == "prospect"
        assert got["rfm_segment"] is None
        assert got["order_count"] == 0
        assert got["scored_at"] is None

    async def test_answers_404_for_a_customer_no_event_mentioned(
        self, client: httpx.AsyncClient
    ) -> None:
        unknown = uuid.uuid4()

        response = await client.get(f"/customers/{unknown}/scores", headers=READ)

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["detail"] == f"no scores for customer {unknown} yet"

    async def test_points_at_a_malformed_customer_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody/scores", headers=READ)

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/path/customer_id"}

    async def test_refuses_a_token_without_the_read_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/analytics/rfm", headers=bearer("customers:read"))

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["segments:read"]


class TestRecompute:
    async def test_runs_in_the_background_by_default(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await population(app)

        response = await client.post("/analytics:recompute", headers=ADMIN)

        assert response.status_code == 202, response.text
        assert response.json() == {
            "state": "accepted",
            "accepted_at": "2026-11-01T00:00:00Z",
            "computed_at": None,
            "population": None,
            "customers_rescored": None,
            "scores_published": None,
        }
        result = await app.state.analytics_pass
        assert result.customers_rescored == 5
        body = (await client.get("/analytics/rfm", headers=READ)).json()
        assert body["last_pass"]["trigger"] == "request"
        assert body["last_pass"]["finished_at"] == "2026-11-01T00:00:00Z"
        assert body["last_pass"]["customers_rescored"] == 5
        assert body["scored_customers"] == 5

    async def test_refuses_a_second_pass_while_one_requested_earlier_runs(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        never = asyncio.Event()
        app.state.analytics_pass = asyncio.create_task(never.wait())
        try:
            response = await client.post("/analytics:recompute", headers=ADMIN)
        finally:
            app.state.analytics_pass.cancel()

        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["detail"] == "a recompute requested earlier is still running"

    async def test_is_for_admins_only(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/analytics:recompute", headers=bearer("segments:write"))

        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["missing_scopes"] == ["admin"]

    async def test_refuses_a_request_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/analytics:recompute")

        assert response.status_code == 401

    async def test_an_empty_population_has_no_boundaries(self, client: httpx.AsyncClient) -> None:
        result = await recompute(client)

        assert result["population"] == 0
        assert result["customers_rescored"] == 0
        body = (await client.get("/analytics/rfm", headers=READ)).json()
        assert body["boundaries_computed_at"] is None
