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
from services.interactions.ticket.scheduler import SlaScheduler
from shared.errors import PROBLEM_JSON
from shared.events import CustomerErased, CustomerMerged, Envelope
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, sla_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def agent(subject: str = "agent-1", **kw: Any) -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii", subject=subject, **kw)


def a_ticket(customer_id: uuid.UUID, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": str(customer_id),
        "title": "Parcel arrived damaged",
        "description": "The vase inside is broken.",
        "category": "complaint",
        "priority": "urgent",
        "channel": "email",
    }
    body.update(overrides)
    return body


async def open_ticket(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/tickets", json=body, headers=agent())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def outbox(app: FastAPI, customer_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT headers, payload FROM interactions.outbox WHERE key = :key "
                    "ORDER BY created_at, id"
                ),
                {"key": str(customer_id)},
            )
        ).all()
    return [(dict(h)["ce_type"], json.loads(p)) for h, p in rows]


async def set_scope(app: FastAPI, customer_id: uuid.UUID, owner: str, team: str) -> None:
    async with app.state.database.session() as session:
        await session.execute(
            text(
                "INSERT INTO interactions.customer_scope (customer_id, owner_id, team_id) "
                "VALUES (:c, :o, :t)"
            ),
            {"c": customer_id, "o": owner, "t": team},
        )


class TestOpenTicket:
    async def test_opens_a_ticket_with_due_times_from_its_priority_policy(
        self, client: httpx.AsyncClient
    ) -> None:
        before = datetime.now(UTC)
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        assert created["status"] == "open"
        assert created["priority"] == "urgent"
        assert created["description"] == "The vase inside is broken."
        opened = datetime.fromisoformat(created["opened_at"])
        assert before <= opened <= datetime.now(UTC)
        # Seeded urgent policy: 30 min first response, 4 h resolution, around the clock.
        assert datetime.fromisoformat(created["first_response_due_at"]) == opened + timedelta(
            minutes=30
        )
        assert datetime.fromisoformat(created["resolution_due_at"]) == opened + timedelta(hours=4)
        assert created["version"] == 1

    async def test_queues_ticket_opened_in_the_same_transaction(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        created = await open_ticket(client, a_ticket(customer_id))

        events = await outbox(app, customer_id)
        assert [t for t, _ in events] == ["rapport.interaction.ticket_opened.v1"]
        data = events[0][1]
        assert data["ticket_id"] == created["id"]
        assert data["title"] == "Parcel arrived damaged"
        assert data["category"] == "complaint"
        assert data["priority"] == "urgent"

    async def test_a_retry_with_the_same_idempotency_key_returns_the_first_ticket(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        headers = {**agent(), "Idempotency-Key": "ticket-retry-1"}
        first = await client.post("/tickets", json=a_ticket(customer_id), headers=headers)
        again = await client.post("/tickets", json=a_ticket(customer_id), headers=headers)

        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert len(await outbox(app, customer_id)) == 1

    async def test_refuses_an_unknown_category_with_422_at_the_field(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/tickets", json=a_ticket(uuid.uuid4(), category="rant"), headers=agent()
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/category"}

    async def test_refuses_an_oversize_title(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/tickets", json=a_ticket(uuid.uuid4(), title="x" * 201), headers=agent()
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/title"}

    async def test_a_description_over_the_field_limit_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/tickets", json=a_ticket(uuid.uuid4(), description="x" * 20_001), headers=agent()
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/description"}

    async def test_a_body_over_the_request_limit_is_413(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/tickets", json=a_ticket(uuid.uuid4(), description="x" * 1_100_000), headers=agent()
        )

        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM_JSON

    async def test_refuses_a_reader(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/tickets", json=a_ticket(uuid.uuid4()), headers=bearer("interactions:read")
        )

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["interactions:write"]


class TestGetTicket:
    async def test_unknown_ticket_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/tickets/{uuid.uuid4()}", headers=agent())

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/not-found"

    async def test_withholds_the_description_without_customers_pii(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        response = await client.get(
            f"/tickets/{created['id']}", headers=bearer("interactions:read")
        )

        assert response.status_code == 200
        assert response.json()["description"] == "[withheld: needs customers:pii]"
        assert response.json()["title"] == "Parcel arrived damaged"
        assert response.headers["etag"] == '"1"'

    async def test_a_team_scoped_agent_does_not_see_another_teams_ticket(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ours, theirs = uuid.uuid4(), uuid.uuid4()
        await set_scope(app, ours, "rep-a", "team-a")
        await set_scope(app, theirs, "rep-b", "team-b")
        mine = await open_ticket(client, a_ticket(ours))
        other = await open_ticket(client, a_ticket(theirs))
        team_a = bearer("interactions:read", scope_mode="team", team="team-a")

        assert (await client.get(f"/tickets/{mine['id']}", headers=team_a)).status_code == 200
        assert (await client.get(f"/tickets/{other['id']}", headers=team_a)).status_code == 404
        listed = await client.get("/tickets", headers=team_a)
        ids = {t["id"] for t in listed.json()["items"]}
        assert mine["id"] in ids
        assert other["id"] not in ids


class TestUpdateTicket:
    async def test_assigns_and_reprioritises_recomputing_due_times(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4(), priority="urgent"))

        response = await client.patch(
            f"/tickets/{created['id']}",
            json={"priority": "high", "assignee_id": "agent-7", "team_id": "support-eu"},
            headers={**agent(), "If-Match": '"1"'},
        )

        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["priority"] == "high"
        assert updated["assignee_id"] == "agent-7"
        assert updated["team_id"] == "support-eu"
        assert updated["version"] == 2
        assert response.headers["etag"] == '"2"'
        opened = datetime.fromisoformat(updated["opened_at"])
        # high: 60 min first response, 8 h resolution.
        assert datetime.fromisoformat(updated["first_response_due_at"]) == opened + timedelta(
            hours=1
        )
        assert datetime.fromisoformat(updated["resolution_due_at"]) == opened + timedelta(hours=8)

    async def test_a_stale_if_match_is_refused_with_412(self, client: httpx.AsyncClient) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        response = await client.patch(
            f"/tickets/{created['id']}",
            json={"priority": "low"},
            headers={**agent(), "If-Match": '"7"'},
        )

        assert response.status_code == 412
        assert response.json()["current_etag"] == '"1"'

    async def test_refuses_an_unknown_priority(self, client: httpx.AsyncClient) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        response = await client.patch(
            f"/tickets/{created['id']}", json={"priority": "asap"}, headers=agent()
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/priority"}


class TestTransition:
    async def test_walks_the_workflow_and_publishes_each_change(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        created = await open_ticket(client, a_ticket(customer_id))
        path = f"/tickets/{created['id']}:transition"

        statuses = []
        for to in ("pending", "resolved", "closed", "open"):
            response = await client.post(path, json={"to": to}, headers=agent())
            assert response.status_code == 200, response.text
            statuses.append(response.json()["status"])
            if to == "resolved":
                assert response.json()["resolved_at"] is not None
        assert statuses == ["pending", "resolved", "closed", "open"]
        assert response.json()["resolved_at"] is None
        assert response.json()["closed_at"] is None

        changes = [d for t, d in await outbox(app, customer_id) if t.endswith("status_changed.v1")]
        assert [(c["previous_status"], c["status"]) for c in changes] == [
            ("open", "pending"),
            ("pending", "resolved"),
            ("resolved", "closed"),
            ("closed", "open"),
        ]

    async def test_an_illegal_move_is_409_naming_the_allowed_ones(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))
        path = f"/tickets/{created['id']}:transition"
        await client.post(path, json={"to": "closed"}, headers=agent())

        response = await client.post(path, json={"to": "pending"}, headers=agent())

        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["allowed"] == ["open"]
        assert problem["current_status"] == "closed"
        assert "allowed: open" in problem["detail"]

    async def test_an_unknown_status_is_422(self, client: httpx.AsyncClient) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        response = await client.post(
            f"/tickets/{created['id']}:transition", json={"to": "archived"}, headers=agent()
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/to"}

    async def test_an_unknown_ticket_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"/tickets/{uuid.uuid4()}:transition", json={"to": "pending"}, headers=agent()
        )

        assert response.status_code == 404


class TestComments:
    async def test_the_first_public_agent_comment_sets_first_responded_at(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))
        base = f"/tickets/{created['id']}"

        note = await client.post(
            f"{base}/comments", json={"body": "Checking stock.", "public": False}, headers=agent()
        )
        assert note.status_code == 201
        assert (await client.get(base, headers=agent())).json()["first_responded_at"] is None

        reply = await client.post(
            f"{base}/comments", json={"body": "A new vase is on its way."}, headers=agent()
        )
        assert reply.status_code == 201
        assert reply.json()["author_id"] == "agent-1"
        ticket = (await client.get(base, headers=agent())).json()
        assert ticket["first_responded_at"] == reply.json()["created_at"]

        await client.post(f"{base}/comments", json={"body": "Thanks!"}, headers=agent())
        assert (await client.get(base, headers=agent())).json()[
            "first_responded_at"
        ] == reply.json()["created_at"]

    async def test_lists_comments_oldest_first_and_withholds_bodies_without_pii(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))
        base = f"/tickets/{created['id']}/comments"
        for body, public in (("one", True), ("two", False)):
            await client.post(base, json={"body": body, "public": public}, headers=agent())

        everything = (await client.get(base, headers=agent())).json()["items"]
        public_only = (await client.get(f"{base}?public_only=true", headers=agent())).json()
        masked = (await client.get(base, headers=bearer("interactions:read"))).json()["items"]

        assert [c["body"] for c in everything] == ["one", "two"]
        assert [c["body"] for c in public_only["items"]] == ["one"]
        assert {c["body"] for c in masked} == {"[withheld: needs customers:pii]"}

    async def test_an_empty_body_is_422(self, client: httpx.AsyncClient) -> None:
        created = await open_ticket(client, a_ticket(uuid.uuid4()))

        response = await client.post(
            f"/tickets/{created['id']}/comments", json={"body": ""}, headers=agent()
        )

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/body/body"}


class TestListTickets:
    async def test_filters_by_status_assignee_and_breach(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        a = await open_ticket(client, a_ticket(customer_id))
        b = await open_ticket(client, a_ticket(customer_id))
        await client.patch(f"/tickets/{a['id']}", json={"assignee_id": "agent-9"}, headers=agent())
        await client.post(
            f"/tickets/{b['id']}:transition", json={"to": "resolved"}, headers=agent()
        )
        # Past the first-response target: `a` breaches, the resolved `b` cannot.
        later = datetime.fromisoformat(a["first_response_due_at"]) + timedelta(seconds=1)
        await SlaScheduler(app.state.database, now=lambda: later).run_once()

        def ids(response: httpx.Response) -> list[str]:
            assert response.status_code == 200, response.text
            return [t["id"] for t in response.json()["items"]]

        q = f"/tickets?customer_id={customer_id}"
        assert ids(await client.get(q, headers=agent())) == [b["id"], a["id"]]
        assert ids(await client.get(f"{q}&status=resolved", headers=agent())) == [b["id"]]
        assert ids(await client.get(f"{q}&assignee=agent-9", headers=agent())) == [a["id"]]
        assert ids(await client.get(f"{q}&breached=true", headers=agent())) == [a["id"]]
        assert ids(await client.get(f"{q}&breached=false", headers=agent())) == [b["id"]]
        first = await client.get(f"{q}&limit=1", headers=agent())
        assert ids(first) == [b["id"]]
        rest = await client.get(
            f"{q}&limit=1&cursor={first.json()['next_cursor']}", headers=agent()
        )
        assert ids(rest) == [a["id"]]

    async def test_an_unknown_status_filter_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/tickets?status=archived", headers=agent())

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/query/status"}


class TestCustomerMergedAndErased:
    async def test_merge_moves_tickets_and_answers_erase_drops_their_words(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = uuid.uuid4(), uuid.uuid4()
        ticket = await open_ticket(client, a_ticket(duplicate))
        await client.post(
            f"/tickets/{ticket['id']}/comments", json={"body": "Call me on 0151…"}, headers=agent()
        )
        await client.post(
            "/surveys/responses",
            json={"customer_id": str(duplicate), "survey": "csat", "score": 2, "comment": "Slow"},
            headers=agent(),
        )
        now = datetime.now(UTC)

        async def deliver(event: Any) -> None:
            handler = subscriptions.handler_for(event.event_type)
            assert handler is not None
            async with app.state.database.session() as session:
                await handler(session, event, Envelope.wrap(event, source="/test"))

        await deliver(
            CustomerMerged(
                customer_id=survivor, merged_id=duplicate, merged_by="user-1", merged_at=now
            )
        )
        moved = (await client.get(f"/tickets/{ticket['id']}", headers=agent())).json()
        assert moved["customer_id"] == str(survivor)
        summary = await client.get(f"/surveys/summary?customer_id={survivor}", headers=agent())
        assert summary.json()["csat"] == {"responses": 1, "average": 2.0}

        await deliver(CustomerErased(customer_id=survivor, erased_at=now))
        erased = (await client.get(f"/tickets/{ticket['id']}", headers=agent())).json()
        assert (erased["title"], erased["description"]) == ("[erased]", None)
        comments = await client.get(f"/tickets/{ticket['id']}/comments", headers=agent())
        assert [c["body"] for c in comments.json()["items"]] == ["[erased]"]
        async with app.state.database.session() as session:
            comment = await session.scalar(
                text("SELECT comment FROM interactions.survey_response WHERE customer_id = :c"),
                {"c": survivor},
            )
        assert comment is None
        # The figures stay right.
        summary = await client.get(f"/surveys/summary?customer_id={survivor}", headers=agent())
        assert summary.json()["csat"]["responses"] == 1
