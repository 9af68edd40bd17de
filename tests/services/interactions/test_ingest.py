"""``POST /interactions:batch``: each item validated and stored on its own, results by index."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from gateway.routes import RouteTable
from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.interactions.config import Settings
from services.interactions.main import create_app
from shared.errors import PROBLEM_JSON
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITER = bearer("interactions:write")
READER = bearer("interactions:read")
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def c360(make_settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real customer360, in-process: interactions asks it about customers it has not
    heard of yet."""
    app = customer360_app(make_settings(Customer360Settings))
    async with api_client(app) as client:
        yield app, client


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any, c360: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    app = create_app(make_settings(Settings, customer360_url="http://customer360"))
    app.state.customer_resolver.mounts = {"http://customer360": httpx.ASGITransport(app=c360[0])}
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def known(app: FastAPI, *customer_ids: uuid.UUID) -> None:
    """Make interactions know these customers, as their CustomerCreated events would."""
    async with app.state.database.session() as session:
        for customer_id in customer_ids:
            await session.execute(
                text("INSERT INTO interactions.customer_scope (customer_id) VALUES (:c)"),
                {"c": customer_id},
            )


def page_view(customer_id: uuid.UUID, /, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "customer_id": str(customer_id),
        "channel": "web",
        "kind": "page_view",
        "occurred_at": AT.isoformat(),
        "metadata": {"url": "https://shop.example.com/p/tea", "product": "SKU-1"},
    }
    item.update(overrides)
    return item


def a_call(customer_id: uuid.UUID, /, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "customer_id": str(customer_id),
        "channel": "call",
        "kind": "call",
        "direction": "inbound",
        "occurred_at": AT.isoformat(),
        "agent_id": "agent-7",
        "summary": "Asked about a refund.",
        "metadata": {"duration_s": 95, "outcome": "answered"},
    }
    item.update(overrides)
    return item


async def ingest(
    client: httpx.AsyncClient, events: list[Any], source: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"events": events}
    if source is not None:
        body["source"] = source
    response = await client.post("/interactions:batch", json=body, headers=WRITER)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored_rows(app: FastAPI, customer_id: uuid.UUID) -> list[Any]:
    async with app.state.database.session() as session:
        return list(
            (
                await session.execute(
                    text(
                        "SELECT id, kind, source, event_id, metadata FROM interactions.interaction"
                        " WHERE customer_id = :c ORDER BY occurred_at, id"
                    ),
                    {"c": customer_id},
                )
            ).all()
        )


async def outbox_types(app: FastAPI, customer_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.database.session() as session:
        rows = (
            await session.execute(
                text("SELECT headers, payload FROM interactions.outbox WHERE key = :k ORDER BY id"),
                {"k": str(customer_id)},
            )
        ).all()
    return [(dict(headers)["ce_type"], json.loads(payload)) for headers, payload in rows]


class TestBatchPartialSuccess:
    async def test_stores_the_good_items_and_reports_each_bad_one_by_index(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer, stranger = uuid.uuid4(), uuid.uuid4()
        await known(app, customer)
        soon = datetime.now(UTC) + timedelta(minutes=10)
        events = [
            page_view(customer),  # 0 good
            page_view(customer, channel="pigeon"),  # 1 invalid enum
            page_view(customer, occurred_at=soon.isoformat()),  # 2 future
            a_call(customer),  # 3 good
            page_view(customer, occurred_at="1969-12-31T23:59:59Z"),  # 4 before 1970
            a_call(customer, summary="x" * 4001),  # 5 oversize
            page_view(stranger),  # 6 unknown customer
            page_view(customer, metadata={"term": "tea"}),  # 7 metadata of another kind
            a_call(customer, channel="email"),  # 8 a call does not happen by e-mail
            "not an object",  # 9
        ]

        result = await ingest(client, events)

        statuses = [r["status"] for r in result["results"]]
        assert statuses == ["stored", "error", "error", "stored"] + ["error"] * 6
        assert [r["index"] for r in result["results"]] == list(range(10))
        assert (result["stored"], result["duplicates"], result["errors"]) == (2, 0, 8)
        problems = {r["index"]: r["problem"] for r in result["results"] if r["problem"]}
        pointers = {i: {e["pointer"] for e in p["errors"]} for i, p in problems.items()}
        assert pointers == {
            1: {"/events/1/channel"},
            2: {"/events/2/occurred_at"},
            4: {"/events/4/occurred_at"},
            5: {"/events/5/summary"},
            6: {"/events/6/customer_id"},
            7: {"/events/7/metadata/url", "/events/7/metadata/term"},
            8: {"/events/8/kind"},
            9: {"/events/9"},
        }
        assert problems[6]["type"] == "/problems/unknown-customer"
        assert str(stranger) in problems[6]["detail"]
        assert {p["type"] for i, p in problems.items() if i != 6} == {"/problems/validation-failed"}
        assert {p["status"] for p in problems.values()} == {422}
        assert "5 minutes in the future" in problems[2]["errors"][0]["detail"]
        assert "1970" in problems[4]["errors"][0]["detail"]
        assert problems[8]["errors"][0]["detail"].endswith("a call happens on call, not on email")

        rows = await stored_rows(app, customer)
        assert sorted(str(r.id) for r in rows) == sorted(result["results"][i]["id"] for i in (0, 3))
        assert {r.kind for r in rows} == {"page_view", "call"}
        assert await stored_rows(app, stranger) == []

    async def test_keeps_the_typed_metadata_and_the_source(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        event = page_view(customer)

        result = await ingest(client, [event], source="web-tracker")

        got = await client.get(f"/interactions/{result['results'][0]['id']}", headers=READER)
        assert got.status_code == 200
        body = got.json()
        assert body["source"] == "web-tracker"
        assert body["event_id"] == event["event_id"]
        assert body["metadata"] == {"url": "https://shop.example.com/p/tea", "product": "SKU-1"}
        assert datetime.fromisoformat(body["occurred_at"]) == AT

    async def test_a_batch_of_only_bad_items_answers_200_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)

        result = await ingest(client, [page_view(customer, kind="teleport")])

        assert (result["stored"], result["errors"]) == (0, 1)
        assert result["results"][0]["problem"]["errors"][0]["pointer"] == "/events/0/kind"
        assert await stored_rows(app, customer) == []


class TestBatchIdempotency:
    async def test_a_retried_batch_stores_nothing_twice(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        events = [page_view(customer), a_call(customer), page_view(customer)]

        first = await ingest(client, events)
        again = await ingest(client, events)

        assert [r["status"] for r in first["results"]] == ["stored"] * 3
        assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
        assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
        assert (again["stored"], again["duplicates"]) == (0, 3)
        assert len(await stored_rows(app, customer)) == 3
        # the retry queued no events either: one call event, one behaviour summary
        assert [t for t, _ in await outbox_types(app, customer)] == [
            "rapport.interaction.recorded.v1",
            "rapport.interaction.behaviour_recorded.v1",
        ]

    async def test_an_event_id_repeated_in_one_batch_is_stored_once(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        event = page_view(customer)

        result = await ingest(client, [event, page_view(customer), event])

        assert [r["status"] for r in result["results"]] == ["stored", "stored", "duplicate"]
        assert result["results"][2]["id"] == result["results"][0]["id"]
        assert len(await stored_rows(app, customer)) == 2

    async def test_event_ids_are_unique_per_source(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        event = page_view(customer)

        web = await ingest(client, [event], source="web")
        app_ = await ingest(client, [event], source="app")

        assert web["results"][0]["status"] == app_["results"][0]["status"] == "stored"
        rows = await stored_rows(app, customer)
        assert sorted(r.source for r in rows) == ["app", "web"]

    async def test_items_without_an_event_id_are_each_stored(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        event = page_view(customer)
        del event["event_id"]

        result = await ingest(client, [event, event])

        assert [r["status"] for r in result["results"]] == ["stored", "stored"]
        assert len(await stored_rows(app, customer)) == 2


class TestBatchEvents:
    async def test_behaviour_is_coalesced_per_customer_and_touchpoints_publish_each(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ann, bob = uuid.uuid4(), uuid.uuid4()
        await known(app, ann, bob)
        later = (AT + timedelta(minutes=3)).isoformat()
        events = [
            page_view(ann),
            page_view(ann, occurred_at=later, metadata={"url": "https://shop.example.com/b"}),
            page_view(ann, kind="search", metadata={"term": "green tea"}),
            a_call(ann),
            a_call(ann, direction="outbound"),
            page_view(bob, kind="click", metadata={"element": "buy", "product": "SKU-9"}),
        ]

        await ingest(client, events)

        ann_events = await outbox_types(app, ann)
        assert [t for t, _ in ann_events] == [
            "rapport.interaction.recorded.v1",
            "rapport.interaction.recorded.v1",
            "rapport.interaction.behaviour_recorded.v1",
        ]
        call = ann_events[0][1]
        assert call["kind"] == "call"
        assert call["agent_id"] == "agent-7"
        assert call["metadata"] == {"duration_s": 95, "outcome": "answered"}
        summary = ann_events[2][1]
        assert summary["counts"] == {"page_view": 2, "search": 1}
        assert summary["urls"] == ["https://shop.example.com/p/tea", "https://shop.example.com/b"]
        assert summary["products"] == ["SKU-1"]
        assert summary["search_terms"] == ["green tea"]
        assert datetime.fromisoformat(summary["first_occurred_at"]) == AT
        assert datetime.fromisoformat(summary["last_occurred_at"]) == AT + timedelta(minutes=3)
        assert summary["last_channel"] == "web"
        bob_events = await outbox_types(app, bob)
        assert [(t, p["counts"], p["products"]) for t, p in bob_events] == [
            ("rapport.interaction.behaviour_recorded.v1", {"click": 1}, ["SKU-9"])
        ]


class TestBatchRefusedWhole:
    async def test_refuses_more_than_1000_events(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        events = [page_view(customer, metadata={"url": "/"}) for _ in range(1001)]

        response = await client.post("/interactions:batch", json={"events": events}, headers=WRITER)

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/events"}
        assert await stored_rows(app, customer) == []

    async def test_refuses_an_empty_batch(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/interactions:batch", json={"events": []}, headers=WRITER)

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/events"}

    async def test_refuses_a_bad_source_name(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/interactions:batch", json={"source": "Web Tracker!", "events": [{}]}, headers=WRITER
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/source"}

    async def test_answers_400_to_a_body_that_is_not_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/interactions:batch",
            content=b'{"events": [',
            headers={**WRITER, "content-type": "application/json"},
        )

        assert response.status_code == 400
        assert response.json()["type"] == "/problems/malformed-body"

    async def test_answers_413_to_a_body_over_the_limit(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await known(app, customer)
        events = [a_call(customer, summary="y" * 3000) for _ in range(400)]  # ~1.3 MB

        response = await client.post("/interactions:batch", json={"events": events}, headers=WRITER)

        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM_JSON
        assert await stored_rows(app, customer) == []

    async def test_refuses_a_token_without_the_write_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/interactions:batch", json={"events": [{}]}, headers=READER)

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["interactions:write"]


class TestPublished:
    async def test_the_gateway_routes_the_batch_endpoint_to_interactions(self) -> None:
        assert RouteTable().owner("/interactions:batch") == "interactions"

    async def test_the_openapi_document_describes_the_batch_items(self, app: FastAPI) -> None:
        document = app.openapi()
        operation = document["paths"]["/interactions:batch"]["post"]
        assert operation["summary"] == "Ingest a batch of interactions"
        request = operation["requestBody"]["content"]["application/json"]["schema"]
        batch = document["components"]["schemas"][request["$ref"].rsplit("/", 1)[1]]
        items = batch["properties"]["events"]["items"]
        assert items == {"$ref": "#/components/schemas/InteractionCreate"}
        assert "metadata" in document["components"]["schemas"]["InteractionCreate"]["properties"]
        assert {"401", "403", "413"} <= set(operation["responses"])


class TestConcurrentBatches:
    async def test_racing_retries_of_a_batch_store_each_event_once(
        self, make_settings: Any
    ) -> None:
        app = create_app(make_settings(Settings))
        source = f"race-{uuid.uuid4().hex[:8]}"
        customer = uuid.uuid4()
        async with api_client(app, rollback=False) as client:
            await known(app, customer)
            try:
                await self.race(app, client, source, customer)
            finally:  # committed rows: leave the shared database as it was
                async with app.state.database.session() as session:
                    for statement in (
                        "DELETE FROM interactions.interaction WHERE customer_id = :c",
                        "DELETE FROM interactions.outbox WHERE key = :k",
                        "DELETE FROM interactions.customer_scope WHERE customer_id = :c",
                    ):
                        await session.execute(text(statement), {"c": customer, "k": str(customer)})

    async def race(
        self, app: FastAPI, client: httpx.AsyncClient, source: str, customer: uuid.UUID
    ) -> None:
        events = [page_view(customer) for _ in range(1000)]
        # the same events in opposite orders: without one lock order these would deadlock
        bodies = [events if n % 2 == 0 else events[::-1] for n in range(6)]

        responses = await asyncio.gather(
            *(
                client.post(
                    "/interactions:batch", json={"source": source, "events": body}, headers=WRITER
                )
                for body in bodies
            )
        )

        assert [r.status_code for r in responses] == [200] * 6
        results = [r.json() for r in responses]
        assert sum(r["stored"] for r in results) == 1000
        assert sum(r["duplicates"] for r in results) == 5000
        first_ids = {r["id"] for r in results[0]["results"]}
        assert all({x["id"] for x in r["results"]} == first_ids for r in results)
        assert len(await stored_rows(app, customer)) == 1000


class TestCustomerCheck:
    """Unknown customers are refused; a customer created moments ago, whose event has not
    reached interactions, is confirmed with customer360."""

    async def new_in_customer360(self, c360: tuple[FastAPI, httpx.AsyncClient]) -> str:
        response = await c360[1].post(
            "/customers",
            json={"display_name": "Li Na"},
            headers=bearer("customers:read", "customers:write"),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def test_a_single_interaction_of_a_brand_new_customer_is_stored(
        self, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        customer_id = await self.new_in_customer360(c360)
        body = {
            "customer_id": customer_id,
            "channel": "call",
            "kind": "call",
            "direction": "inbound",
        }
        response = await client.post("/interactions", json=body, headers=WRITER)
        assert response.status_code == 201, response.text
        assert response.json()["customer_id"] == customer_id

    async def test_a_single_interaction_of_an_unknown_customer_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {
            "customer_id": str(uuid.uuid4()),
            "channel": "call",
            "kind": "call",
            "direction": "inbound",
        }
        response = await client.post("/interactions", json=body, headers=WRITER)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/unknown-customer"
        assert response.json()["errors"][0]["pointer"] == "/body/customer_id"

    async def test_a_batch_confirms_new_customers_and_refuses_strangers(
        self, client: httpx.AsyncClient, c360: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        fresh = await self.new_in_customer360(c360)
        stranger = uuid.uuid4()
        response = await client.post(
            "/interactions:batch",
            json={
                "source": "tracker",
                "events": [page_view(uuid.UUID(fresh)), page_view(stranger)],
            },
            headers=WRITER,
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results[0]["status"] == "stored"
        assert results[1]["status"] == "error"
        assert results[1]["problem"]["type"] == "/problems/unknown-customer"

    async def test_customer360_down_is_a_503_and_nothing_is_stored(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        def down(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        resolver = app.state.customer_resolver
        saved_mounts, saved_client = resolver.mounts, resolver._client
        resolver.mounts, resolver._client = {"http://customer360": httpx.MockTransport(down)}, None
        try:
            customer_id = str(uuid.uuid4())
            body = {
                "customer_id": customer_id,
                "channel": "call",
                "kind": "call",
                "direction": "inbound",
            }
            response = await client.post("/interactions", json=body, headers=WRITER)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            listed = await client.get(
                "/interactions", params={"customer_id": customer_id}, headers=READER
            )
            assert listed.json()["items"] == []
        finally:
            resolver.mounts, resolver._client = saved_mounts, saved_client
