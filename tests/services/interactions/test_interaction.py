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
from shared.errors import PROBLEM_JSON
from tests.support import api_client, bearer


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings))


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
