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

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, sla_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def writer(**kw: Any) -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii", **kw)


async def answer(
    client: httpx.AsyncClient, customer_id: uuid.UUID, survey: str, score: int, **extra: Any
) -> httpx.Response:
    body = {"customer_id": str(customer_id), "survey": survey, "score": score, **extra}
    return await client.post("/surveys/responses", json=body, headers=writer())


def pointers(response: httpx.Response) -> list[str]:
    return [e["pointer"] for e in response.json()["errors"]]


class TestRecordResponse:
    async def test_records_an_nps_answer_and_queues_survey_answered(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id, ticket_id = uuid.uuid4(), uuid.uuid4()

        response = await answer(
            client, customer_id, "nps", 9, ticket_id=str(ticket_id), comment="Quick."
        )

        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["survey"], created["score"], created["comment"]) == ("nps", 9, "Quick.")
        async with app.state.database.session() as session:
            rows = (
                await session.execute(
                    text("SELECT headers, payload FROM interactions.outbox WHERE key = :k"),
                    {"k": str(customer_id)},
                )
            ).all()
        assert len(rows) == 1
        assert dict(rows[0][0])["ce_type"] == "rapport.interaction.survey_answered.v1"
        data = json.loads(rows[0][1])
        assert data["response_id"] == created["id"]
        assert (data["survey"], data["score"], data["ticket_id"]) == ("nps", 9, str(ticket_id))

    @pytest.mark.parametrize(
        ("survey", "score"), [("csat", 0), ("csat", 6), ("nps", 11), ("nps", -1)]
    )
    async def test_a_score_out_of_range_is_422_at_the_score(
        self, client: httpx.AsyncClient, survey: str, score: int
    ) -> None:
        response = await answer(client, uuid.uuid4(), survey, score)

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert pointers(response) == ["/body/score"]

    async def test_an_unknown_survey_is_422(self, client: httpx.AsyncClient) -> None:
        response = await answer(client, uuid.uuid4(), "ces", 3)

        assert response.status_code == 422
        assert "/body/survey" in pointers(response)

    async def test_a_future_or_absurd_answer_time_is_422(self, client: httpx.AsyncClient) -> None:
        future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        for at in (future, "1926-11-23T10:00:00Z"):
            response = await answer(client, uuid.uuid4(), "csat", 4, answered_at=at)

            assert response.status_code == 422, at
            assert pointers(response) == ["/body/answered_at"]

    async def test_an_oversize_comment_is_422(self, client: httpx.AsyncClient) -> None:
        response = await answer(client, uuid.uuid4(), "csat", 4, comment="x" * 4001)

        assert response.status_code == 422
        assert pointers(response) == ["/body/comment"]

    async def test_a_retry_with_the_same_idempotency_key_records_once(
        self, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        body = {"customer_id": str(customer_id), "survey": "csat", "score": 5}
        headers = {**writer(), "Idempotency-Key": "survey-1"}

        first = await client.post("/surveys/responses", json=body, headers=headers)
        again = await client.post("/surveys/responses", json=body, headers=headers)

        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        summary = await client.get(f"/surveys/summary?customer_id={customer_id}", headers=writer())
        assert summary.json()["csat"]["responses"] == 1


class TestSurveySummary:
    async def test_csat_average_and_nps_over_a_known_set(self, client: httpx.AsyncClient) -> None:
        customer_id = uuid.uuid4()
        at = "2026-11-10T12:00:00Z"
        for score in (10, 9, 9, 8, 7, 6, 3, 0, 10, 10):  # 5 promoters, 2 passives, 3 detractors
            assert (
                await answer(client, customer_id, "nps", score, answered_at=at)
            ).status_code == 201
        for score in (5, 4, 4, 1):
            await answer(client, customer_id, "csat", score, answered_at=at)
        # Outside the window.
        await answer(client, customer_id, "nps", 0, answered_at="2026-10-01T00:00:00Z")

        response = await client.get(
            "/surveys/summary",
            params={
                "customer_id": str(customer_id),
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-12-01T00:00:00Z",
            },
            headers=writer(),
        )

        assert response.status_code == 200, response.text
        summary = response.json()
        assert summary["csat"] == {"responses": 4, "average": 3.5}
        assert summary["nps"] == {
            "responses": 10,
            "promoters": 5,
            "passives": 2,
            "detractors": 3,
            "score": 20.0,
        }

    async def test_overall_summary_counts_every_customer_in_scope(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ours, theirs = uuid.uuid4(), uuid.uuid4()
        async with app.state.database.session() as session:
            for customer, team in ((ours, "team-a"), (theirs, "team-b")):
                await session.execute(
                    text(
                        "INSERT INTO interactions.customer_scope (customer_id, owner_id, team_id) "
                        "VALUES (:c, 'rep', :t)"
                    ),
                    {"c": customer, "t": team},
                )
        at = "2026-09-15T12:00:00Z"
        await answer(client, ours, "nps", 10, answered_at=at)
        await answer(client, theirs, "nps", 0, answered_at=at)
        window = {"since": "2026-09-15T00:00:00Z", "until": "2026-09-16T00:00:00Z"}

        everyone = await client.get("/surveys/summary", params=window, headers=writer())
        team_a = await client.get(
            "/surveys/summary",
            params=window,
            headers=bearer("interactions:read", scope_mode="team", team="team-a"),
        )

        assert everyone.json()["nps"]["responses"] == 2
        assert everyone.json()["nps"]["score"] == 0.0
        assert team_a.json()["nps"]["responses"] == 1
        assert team_a.json()["nps"]["score"] == 100.0

    async def test_no_answers_give_null_figures(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            f"/surveys/summary?customer_id={uuid.uuid4()}", headers=writer()
        )

        assert response.json()["csat"] == {"responses": 0, "average": None}
        assert response.json()["nps"]["score"] is None
