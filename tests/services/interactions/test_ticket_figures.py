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

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, sla_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def agent() -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii")


async def a_ticket(
    app: FastAPI,
    client: httpx.AsyncClient,
    *,
    assignee: str | None,
    team: str,
    responded_after: int | None,
    resolved_after: int | None,
    breached: tuple[bool, bool] = (False, False),
    opened_at: datetime = T0,
) -> None:
    """A ticket with a known history (minutes after opening), written straight to its row."""
    body = {"customer_id": str(uuid.uuid4()), "title": "t", "category": "question"}
    ticket = (await client.post("/tickets", json=body, headers=agent())).json()
    minutes = timedelta(minutes=1)
    async with app.state.database.session() as session:
        await session.execute(
            text(
                "UPDATE interactions.ticket SET assignee_id = :a, team_id = :t, opened_at = :o, "
                "first_responded_at = :f, resolved_at = :r, first_response_breached_at = :fb, "
                "resolution_breached_at = :rb WHERE id = :id"
            ),
            {
                "id": ticket["id"],
                "a": assignee,
                "t": team,
                "o": opened_at,
                "f": None if responded_after is None else opened_at + responded_after * minutes,
                "r": None if resolved_after is None else opened_at + resolved_after * minutes,
                "fb": opened_at + minutes if breached[0] else None,
                "rb": opened_at + minutes if breached[1] else None,
            },
        )


class TestTicketStats:
    async def test_per_agent_counts_rates_medians_and_averages(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        team = f"team-{uuid.uuid4()}"
        await a_ticket(
            app, client, assignee="ann", team=team, responded_after=10, resolved_after=60
        )
        await a_ticket(
            app,
            client,
            assignee="ann",
            team=team,
            responded_after=20,
            resolved_after=120,
            breached=(False, True),
        )
        await a_ticket(
            app,
            client,
            assignee="ann",
            team=team,
            responded_after=60,
            resolved_after=None,
            breached=(True, False),
        )
        await a_ticket(app, client, assignee="bob", team=team, responded_after=5, resolved_after=30)
        # Outside the window: not counted.
        await a_ticket(
            app,
            client,
            assignee="ann",
            team=team,
            responded_after=1,
            resolved_after=1,
            opened_at=T0 - timedelta(days=30),
        )

        response = await client.get(
            "/tickets/stats",
            params={
                "group_by": "agent",
                "since": T0.isoformat(),
                "until": (T0 + timedelta(days=1)).isoformat(),
            },
            headers=agent(),
        )

        assert response.status_code == 200, response.text
        groups = {g["key"]: g for g in response.json()["groups"]}
        ann = groups["ann"]
        assert ann["tickets"] == 3
        assert ann["first_response_breached"] == 1
        assert ann["resolution_breached"] == 1
        assert ann["first_response_breach_rate"] == pytest.approx(0.3333)
        assert ann["first_response_minutes_median"] == 20.0
        assert ann["first_response_minutes_avg"] == 30.0
        assert ann["resolution_minutes_median"] == 90.0
        assert ann["resolution_minutes_avg"] == 90.0
        bob = groups["bob"]
        assert (bob["tickets"], bob["first_response_minutes_median"]) == (1, 5.0)
        assert bob["resolution_breach_rate"] == 0.0

    async def test_groups_by_team(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        team = f"team-{uuid.uuid4()}"
        for who in ("ann", "bob"):
            await a_ticket(
                app, client, assignee=who, team=team, responded_after=4, resolved_after=8
            )

        response = await client.get("/tickets/stats", params={"group_by": "team"}, headers=agent())

        groups = {g["key"]: g for g in response.json()["groups"]}
        assert groups[team]["tickets"] == 2
        assert groups[team]["resolution_minutes_avg"] == 8.0

    async def test_an_inverted_window_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/tickets/stats",
            params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
            headers=agent(),
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [e["pointer"] for e in response.json()["errors"]] == ["/query/until"]

    async def test_an_unknown_grouping_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/tickets/stats?group_by=planet", headers=agent())

        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == ["/query/group_by"]


class TestSlaPolicies:
    async def test_lists_the_seeded_defaults(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/tickets/sla-policies", headers=agent())

        policies = {p["priority"]: p for p in response.json()}
        assert set(policies) == {"low", "normal", "high", "urgent"}
        assert policies["urgent"]["first_response_minutes"] == 30
        assert policies["normal"]["business_days"] == [1, 2, 3, 4, 5]

    async def test_an_admin_sets_a_policy_that_new_tickets_follow(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = bearer("admin", "interactions:write", "interactions:read")
        response = await client.put(
            "/tickets/sla-policies/low",
            json={"first_response_minutes": 15, "resolution_minutes": 45},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["business_days"] is None

        ticket = (
            await client.post(
                "/tickets",
                json={
                    "customer_id": str(uuid.uuid4()),
                    "title": "t",
                    "category": "request",
                    "priority": "low",
                },
                headers=admin,
            )
        ).json()
        opened = datetime.fromisoformat(ticket["opened_at"])
        assert datetime.fromisoformat(ticket["first_response_due_at"]) == opened + timedelta(
            minutes=15
        )
        got = await client.get("/tickets/sla-policies/low", headers=admin)
        assert got.json()["resolution_minutes"] == 45

    async def test_needs_the_admin_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/tickets/sla-policies/low",
            json={"first_response_minutes": 15, "resolution_minutes": 45},
            headers=agent(),
        )

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["admin"]

    async def test_refuses_inconsistent_business_hours(self, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/tickets/sla-policies/low",
            json={
                "first_response_minutes": 15,
                "resolution_minutes": 45,
                "business_days": [1, 8],
                "business_start_hour": 9,
                "business_end_hour": 17,
            },
            headers=bearer("admin"),
        )

        assert response.status_code == 422
        assert "ISO weekdays" in response.text

    async def test_refuses_an_unknown_timezone(self, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/tickets/sla-policies/low",
            json={"first_response_minutes": 15, "resolution_minutes": 45, "timezone": "Mars/Base"},
            headers=bearer("admin"),
        )

        assert response.status_code == 422
        assert "unknown timezone" in response.text

    async def test_an_unknown_priority_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/tickets/sla-policies/asap", headers=agent())

        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == ["/path/priority"]
