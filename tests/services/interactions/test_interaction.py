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

from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.subscriptions import subscriptions
from shared.errors import PROBLEM_JSON
from shared.events import CustomerErased, CustomerMerged, Envelope
from tests.support import api_client, bearer


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    app = create_app(make_settings(Settings, customer360_url="http://customer360"))
    # These tests are about interactions alone: customer360 stands in, confirming every
    # customer. Unknown customers, and the real customer360, are in test_ingest.py.
    app.state.customer_resolver.mounts = {
        "http://customer360": httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    }
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def writer() -> dict[str, str]:
    return bearer("interactions:write")


def reader() -> dict[str, str]:
    return bearer("interactions:read")


def a_call(customer_id: uuid.UUID, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": str(customer_id),
        "channel": "call",
        "kind": "call",
        "direction": "inbound",
        "occurred_at": "2026-11-23T09:30:00+01:00",
        "summary": "Asked about the delivery date.",
    }
    body.update(overrides)
    return body


async def record(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/interactions", json=body, headers=writer())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def pointers(response: httpx.Response) -> set[str]:
    return {e["pointer"] for e in response.json()["errors"]}


class TestRecordInteraction:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_records_an_interaction_and_returns_it(self, client: httpx.AsyncClient) -> None:
        customer_id = uuid.uuid4()

        created = await record(client, a_call(customer_id))

        assert uuid.UUID(created["id"])
        assert created["customer_id"] == str(customer_id)
        assert created["channel"] == "call"
        assert created["kind"] == "call"
        assert created["direction"] == "inbound"
        assert created["summary"] == "Asked about the delivery date."
        assert datetime.fromisoformat(created["occurred_at"]) == datetime(
            2026, 11, 23, 8, 30, tzinfo=UTC
        )

    @pytest.mark.asyncio(loop_scope="session")
    async def test_uses_the_time_of_the_request_when_occurred_at_is_left_out(
        self, client: httpx.AsyncClient
    ) -> None:
        before = datetime.now(UTC)
        body = a_call(uuid.uuid4(), channel="note", kind="note", direction=None, summary=None)
        del body["occurred_at"]

        created = await record(client, body)

        occurred_at = datetime.fromisoformat(created["occurred_at"])
        assert before <= occurred_at <= datetime.now(UTC)
        assert created["direction"] is None
        assert created["summary"] is None

    @pytest.mark.asyncio(loop_scope="session")
    async def test_queues_exactly_one_interaction_recorded_event(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()

        created = await record(client, a_call(customer_id))

        # The client's database is bound to the test's open transaction, so this session
        # sees the outbox row the request wrote before it is rolled back.
        async with app.state.database.session() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT topic, key, headers, payload FROM interactions.outbox "
                        "WHERE key = :key"
                    ),
                    {"key": str(customer_id)},
                )
            ).all()
        assert len(rows) == 1
        topic, key, headers, payload = rows[0]
        assert topic == "rapport.interaction.v1"
        assert key == str(customer_id)
        assert dict(headers)["ce_type"] == "rapport.interaction.recorded.v1"
        assert dict(headers)["ce_subject"] == str(customer_id)
        data = json.loads(payload)
        assert data["interaction_id"] == created["id"]
        assert data["customer_id"] == str(customer_id)
        assert data["channel"] == "call"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_request_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/interactions", json=a_call(uuid.uuid4()))

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "/problems/unauthorized"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_token_without_the_write_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/interactions", json=a_call(uuid.uuid4()), headers=reader())

        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["missing_scopes"] == ["interactions:write"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_400_to_a_body_that_is_not_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/interactions",
            content=b'{"customer_id": ',
            headers={**writer(), "content-type": "application/json"},
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/malformed-body"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_each_field_of_the_wrong_type(self, client: httpx.AsyncClient) -> None:
        body = a_call(uuid.uuid4(), customer_id="not-a-uuid", channel="pigeon", summary=42)

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/validation-failed"
        assert pointers(response) == {"/body/customer_id", "/body/channel", "/body/summary"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_time_without_a_utc_offset(self, client: httpx.AsyncClient) -> None:
        body = a_call(uuid.uuid4(), occurred_at="2026-11-23T09:30:00")

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/occurred_at"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_unknown_fields(self, client: httpx.AsyncClient) -> None:
        body = a_call(uuid.uuid4(), mood="happy")

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/mood"}


class TestListInteractions:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_lists_a_customers_interactions_in_the_order_they_happened(
        self, client: httpx.AsyncClient
    ) -> None:
        customer_id, other_customer = uuid.uuid4(), uuid.uuid4()
        start = datetime(2026, 11, 1, tzinfo=UTC)
        for days in (2, 0, 1):
            occurred = (start + timedelta(days=days)).isoformat()
            await record(client, a_call(customer_id, occurred_at=occurred, summary=f"day {days}"))
        await record(client, a_call(other_customer))

        response = await client.get(
            "/interactions", params={"customer_id": str(customer_id)}, headers=reader()
        )

        assert response.status_code == 200
        page = response.json()
        assert [i["summary"] for i in page["items"]] == ["day 0", "day 1", "day 2"]
        assert {i["customer_id"] for i in page["items"]} == {str(customer_id)}
        assert page["next_cursor"] is None

    @pytest.mark.asyncio(loop_scope="session")
    async def test_pages_through_with_the_cursor(self, client: httpx.AsyncClient) -> None:
        customer_id = uuid.uuid4()
        start = datetime(2026, 11, 1, tzinfo=UTC)
        for minute in range(5):
            occurred = (start + timedelta(minutes=minute)).isoformat()
            await record(client, a_call(customer_id, occurred_at=occurred, summary=str(minute)))

        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"customer_id": str(customer_id), "limit": "2"}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/interactions", params=params, headers=reader())).json()
            seen += [i["summary"] for i in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert seen == ["0", "1", "2", "3", "4"]
        assert pages == 3

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_400_to_a_cursor_it_did_not_issue(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(
            "/interactions", params={"cursor": "not-a-cursor"}, headers=reader()
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/bad-request"
        assert response.json()["detail"] == "invalid cursor"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_a_malformed_customer_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/interactions", params={"customer_id": "42"}, headers=reader())

        assert response.status_code == 422
        assert pointers(response) == {"/query/customer_id"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_token_without_the_read_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/interactions", headers=writer())

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["interactions:read"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_request_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/interactions")

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON


class TestTypedInteractions:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_keeps_the_typed_metadata_agent_and_subject(
        self, client: httpx.AsyncClient
    ) -> None:
        body = a_call(
            uuid.uuid4(),
            agent_id="agent-3",
            subject="Refund",
            metadata={"duration_s": 300, "outcome": "answered", "from_number": "+8613812345678"},
        )

        created = await record(client, body)

        assert created["agent_id"] == "agent-3"
        assert created["subject"] == "Refund"
        assert created["metadata"] == {
            "duration_s": 300,
            "outcome": "answered",
            "from_number": "+8613812345678",
        }
        assert created["source"] == "api"

    @pytest.mark.asyncio(loop_scope="session")
    @pytest.mark.parametrize(
        ("channel", "kind", "metadata"),
        [
            ("email", "message", {"thread_id": "t-1", "from_address": "wei@example.com"}),
            ("sms", "message", {}),
            ("chat", "message", {"attachments": 2}),
            ("social", "mention", {"network": "weibo", "handle": "@wei"}),
            ("social", "comment", {"post_url": "https://example.com/p/1"}),
            ("social", "like", {}),
            ("social", "share", {"network": "linkedin"}),
            ("meeting", "meeting", {"location": "Shop 3", "duration_min": 45}),
            ("meeting", "visit", {"attendees": ["agent-3"]}),
            ("note", "note", {"pinned": True}),
            ("web", "page_view", {"url": "https://shop.example.com/", "title": "Home"}),
            ("app", "click", {"element": "buy", "product": "SKU-1"}),
            ("web", "search", {"term": "oolong", "results": 4}),
            ("email", "email_opened", {"campaign": "spring-sale"}),
            ("email", "email_bounced", {"bounce_type": "hard", "reason": "550 no such user"}),
            ("chat", "complaint", {"topic": "late delivery"}),
        ],
    )
    async def test_records_every_kind_of_touchpoint(
        self, client: httpx.AsyncClient, channel: str, kind: str, metadata: dict[str, Any]
    ) -> None:
        body = a_call(uuid.uuid4(), channel=channel, kind=kind, metadata=metadata)

        created = await record(client, body)

        assert (created["channel"], created["kind"]) == (channel, kind)
        assert created["metadata"] == {k: v for k, v in metadata.items() if v is not False}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_metadata_that_does_not_fit_the_kind(
        self, client: httpx.AsyncClient
    ) -> None:
        body = a_call(uuid.uuid4(), metadata={"duration_s": -5, "url": "https://x"})

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/metadata/duration_s", "/body/metadata/url"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_requires_the_url_of_a_page_view(self, client: httpx.AsyncClient) -> None:
        body = a_call(uuid.uuid4(), channel="web", kind="page_view", direction=None)

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/metadata/url"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_kind_on_a_channel_where_it_cannot_happen(
        self, client: httpx.AsyncClient
    ) -> None:
        body = a_call(uuid.uuid4(), channel="web", kind="call")

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {"/body/kind"}
        assert response.json()["errors"][0]["detail"].endswith("a call happens on call, not on web")

    @pytest.mark.asyncio(loop_scope="session")
    @pytest.mark.parametrize(
        "occurred_at", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]
    )
    async def test_refuses_absurd_times(self, client: httpx.AsyncClient, occurred_at: str) -> None:
        response = await client.post(
            "/interactions", json=a_call(uuid.uuid4(), occurred_at=occurred_at), headers=writer()
        )

        assert response.status_code == 422
        assert pointers(response) == {"/body/occurred_at"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_accepts_a_time_within_the_clock_skew_tolerance(
        self, client: httpx.AsyncClient
    ) -> None:
        soon = datetime.now(UTC) + timedelta(minutes=4)

        created = await record(client, a_call(uuid.uuid4(), occurred_at=soon.isoformat()))

        assert datetime.fromisoformat(created["occurred_at"]) == soon

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_oversize_content(self, client: httpx.AsyncClient) -> None:
        body = a_call(
            uuid.uuid4(),
            summary="x" * 4001,
            subject="s" * 301,
            metadata={"recording_url": "https://x/" + "r" * 2048},
        )

        response = await client.post("/interactions", json=body, headers=writer())

        assert response.status_code == 422
        assert pointers(response) == {
            "/body/summary",
            "/body/subject",
            "/body/metadata/recording_url",
        }

    @pytest.mark.asyncio(loop_scope="session")
    async def test_an_event_id_makes_the_request_idempotent(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        body = a_call(customer_id, event_id="crm-call-0001")

        first = await client.post("/interactions", json=body, headers=writer())
        again = await client.post("/interactions", json=body, headers=writer())

        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        async with app.state.database.session() as session:
            stored = await session.scalar(
                text("SELECT count(*) FROM interactions.interaction WHERE customer_id = :c"),
                {"c": customer_id},
            )
            events = await session.scalar(
                text("SELECT count(*) FROM interactions.outbox WHERE key = :k"),
                {"k": str(customer_id)},
            )
        assert (stored, events) == (1, 1)


class TestFilterInteractions:
    @pytest_asyncio.fixture(loop_scope="session")
    async def feed(self, client: httpx.AsyncClient) -> uuid.UUID:
        """One customer's mixed touchpoints, a minute apart, in this order."""
        customer_id = uuid.uuid4()
        start = datetime(2026, 11, 1, tzinfo=UTC)
        bodies = [
            a_call(customer_id, agent_id="ann", summary="0"),
            a_call(customer_id, agent_id="bob", direction="outbound", summary="1"),
            a_call(customer_id, channel="email", kind="message", agent_id="ann", summary="2"),
            a_call(
                customer_id,
                channel="web",
                kind="page_view",
                direction=None,
                summary="3",
                metadata={"url": "https://shop.example.com/"},
            ),
            a_call(customer_id, channel="note", kind="note", direction=None, summary="4"),
        ]
        for minute, body in enumerate(bodies):
            body["occurred_at"] = (start + timedelta(minutes=minute)).isoformat()
            await record(client, body)
        return customer_id

    async def summaries(self, client: httpx.AsyncClient, **params: Any) -> list[str]:
        response = await client.get("/interactions", params=params, headers=reader())
        assert response.status_code == 200, response.text
        return [i["summary"] for i in response.json()["items"]]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_filters_by_channel_kind_direction_and_agent(
        self, client: httpx.AsyncClient, feed: uuid.UUID
    ) -> None:
        mine = {"customer_id": str(feed)}
        assert await self.summaries(client, **mine, channel=["call", "note"]) == ["0", "1", "4"]
        assert await self.summaries(client, **mine, kind="page_view") == ["3"]
        assert await self.summaries(client, **mine, direction="outbound") == ["1"]
        assert await self.summaries(client, **mine, agent_id="ann") == ["0", "2"]
        assert await self.summaries(client, **mine, source="api", agent_id="nobody") == []

    @pytest.mark.asyncio(loop_scope="session")
    async def test_filters_by_time_range_and_orders_newest_first(
        self, client: httpx.AsyncClient, feed: uuid.UUID
    ) -> None:
        got = await self.summaries(
            client,
            customer_id=str(feed),
            occurred_from="2026-11-01T00:01:00Z",
            occurred_to="2026-11-01T00:04:00Z",
            order="desc",
        )
        assert got == ["3", "2", "1"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_pages_newest_first_with_the_cursor(
        self, client: httpx.AsyncClient, feed: uuid.UUID
    ) -> None:
        params: dict[str, Any] = {"customer_id": str(feed), "order": "desc", "limit": 2}
        first = (await client.get("/interactions", params=params, headers=reader())).json()
        params["cursor"] = first["next_cursor"]
        second = (await client.get("/interactions", params=params, headers=reader())).json()

        assert [i["summary"] for i in first["items"] + second["items"]] == ["4", "3", "2", "1"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_an_unknown_filter_value(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/interactions", params={"channel": "pigeon", "direction": "up"}, headers=reader()
        )

        assert response.status_code == 422
        assert pointers(response) == {"/query/channel/0", "/query/direction"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_time_range_without_a_utc_offset(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(
            "/interactions", params={"occurred_from": "2026-11-01T00:00:00"}, headers=reader()
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert pointers(response) == {"/query/occurred_from"}


class TestGetInteraction:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_returns_one_interaction(self, client: httpx.AsyncClient) -> None:
        created = await record(client, a_call(uuid.uuid4()))

        response = await client.get(f"/interactions/{created['id']}", headers=reader())

        assert response.status_code == 200
        assert response.json() == created

    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_404_to_an_unknown_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/interactions/{uuid.uuid4()}", headers=reader())

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON


class TestCustomerEvents:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_an_erase_drops_what_was_said_and_the_details_but_keeps_the_touchpoint(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        created = await record(
            client,
            a_call(customer_id, subject="Refund", metadata={"from_number": "+8613812345678"}),
        )
        event = CustomerErased(customer_id=customer_id, erased_at=datetime.now(UTC))
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None

        async with app.state.database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/test"))

        got = (await client.get(f"/interactions/{created['id']}", headers=reader())).json()
        assert (got["summary"], got["subject"], got["metadata"]) == (None, None, {})
        assert (got["channel"], got["kind"], got["agent_id"]) == ("call", "call", None)
        assert got["occurred_at"] == created["occurred_at"]

    @pytest.mark.asyncio(loop_scope="session")
    async def test_a_merge_moves_the_touchpoints_to_the_survivor(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = uuid.uuid4(), uuid.uuid4()
        created = await record(client, a_call(duplicate))
        event = CustomerMerged(
            customer_id=survivor,
            merged_id=duplicate,
            merged_by="user-1",
            merged_at=datetime.now(UTC),
        )
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None

        async with app.state.database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/test"))

        got = (await client.get(f"/interactions/{created['id']}", headers=reader())).json()
        assert got["customer_id"] == str(survivor)
