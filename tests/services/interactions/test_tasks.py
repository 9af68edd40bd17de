import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from services.interactions.careplan.scheduler import CarePlanScheduler
from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.task.repository import TaskRepository
from shared.errors import PROBLEM_JSON
from shared.events import CustomerCreated, CustomerErased, CustomerMerged
from tests.services.interactions.careplan_support import Clock, deliver, outbox_events
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

DUE = "rapport.interaction.task_due.v1"
COMPLETED = "rapport.interaction.task_completed.v1"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(
        make_settings(Settings, sla_scheduler_enabled=False, care_plan_scheduler_enabled=False)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def agent(subject: str = "agent-1", **kw: Any) -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii", subject=subject, **kw)


async def create(
    client: httpx.AsyncClient, customer_id: uuid.UUID | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "customer_id": str(customer_id or uuid.uuid4()),
        "title": "Call back",
        "due_at": "2027-03-01T09:00:00+01:00",
        **fields,
    }
    response = await client.post("/tasks", json=body, headers=agent())
    assert response.status_code == 201, response.text
    return dict(response.json())


def pointers(response: httpx.Response) -> list[str]:
    return [e["pointer"] for e in response.json()["errors"]]


class TestCreateTask:
    async def test_creates_an_open_manual_task(self, client: httpx.AsyncClient) -> None:
        customer_id = uuid.uuid4()
        response = await client.post(
            "/tasks",
            json={
                "customer_id": str(customer_id),
                "title": "Call back about the vase",
                "notes": "After 5 pm",
                "assignee_id": "agent-7",
                "due_at": "2027-03-01T09:00:00+01:00",
            },
            headers=agent(),
        )

        assert response.status_code == 201, response.text
        task = response.json()
        assert response.headers["location"] == f"/tasks/{task['id']}"
        assert response.headers["etag"] == '"1"'
        assert (task["status"], task["source"], task["assignee_id"]) == (
            "open",
            "manual",
            "agent-7",
        )
        assert datetime.fromisoformat(task["due_at"]) == datetime(2027, 3, 1, 8, tzinfo=UTC)
        assert (task["notes"], task["created_by"], task["rule_id"]) == (
            "After 5 pm",
            "agent-1",
            None,
        )

    async def test_notes_are_withheld_without_pii_scope(self, client: httpx.AsyncClient) -> None:
        task = await create(client, notes="Mentions her divorce")

        read = await client.get(
            f"/tasks/{task['id']}", headers=bearer("interactions:read", subject="analyst")
        )

        assert read.status_code == 200
        assert read.json()["notes"] == "[withheld: needs customers:pii]"

    @pytest.mark.parametrize(
        ("due_at", "why"),
        [
            ("2027-03-01T09:00:00", "no offset"),
            ("1899-12-31T09:00:00Z", "absurdly early"),
            ("2300-01-01T00:00:00Z", "absurdly late"),
            ("2027-02-30T09:00:00Z", "no such day"),
        ],
    )
    async def test_a_bad_due_time_is_422_at_due_at(
        self, client: httpx.AsyncClient, due_at: str, why: str
    ) -> None:
        response = await client.post(
            "/tasks",
            json={"customer_id": str(uuid.uuid4()), "title": "x", "due_at": due_at},
            headers=agent(),
        )

        assert response.status_code == 422, why
        assert response.headers["content-type"] == PROBLEM_JSON
        assert pointers(response) == ["/body/due_at"]

    async def test_an_empty_title_and_unknown_field_are_422(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/tasks",
            json={
                "customer_id": str(uuid.uuid4()),
                "title": "",
                "due_at": "2027-03-01T09:00:00Z",
                "priority": "high",
            },
            headers=agent(),
        )

        assert response.status_code == 422
        assert sorted(pointers(response)) == ["/body/priority", "/body/title"]

    async def test_an_idempotent_retry_returns_the_first_task(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {"customer_id": str(uuid.uuid4()), "title": "Once", "due_at": "2027-03-01T09:00Z"}
        headers = {**agent(), "Idempotency-Key": f"k-{uuid.uuid4()}"}

        first = await client.post("/tasks", json=body, headers=headers)
        again = await client.post("/tasks", json=body, headers=headers)

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"


class TestListTasks:
    async def test_filters_by_assignee_status_customer_and_due_range(
        self, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        assignee = f"agent-{uuid.uuid4().hex[:6]}"
        early = await create(client, customer, assignee_id=assignee, due_at="2027-01-01T09:00Z")
        middle = await create(client, customer, assignee_id=assignee, due_at="2027-02-01T09:00Z")
        late = await create(client, customer, assignee_id=assignee, due_at="2027-03-01T09:00Z")
        other = await create(client, assignee_id=assignee, due_at="2027-02-01T10:00Z")
        await client.post(f"/tasks/{late['id']}:complete", headers=agent())

        async def ids(**query: str) -> list[str]:
            response = await client.get("/tasks", params=query, headers=agent())
            assert response.status_code == 200, response.text
            return [t["id"] for t in response.json()["items"]]

        assert await ids(assignee=assignee) == [early["id"], middle["id"], other["id"], late["id"]]
        assert await ids(assignee=assignee, status="open") == [
            early["id"],
            middle["id"],
            other["id"],
        ]
        assert await ids(customer_id=str(customer), status="done") == [late["id"]]
        assert await ids(
            assignee=assignee, due_from="2027-01-15T00:00:00Z", due_to="2027-02-01T10:00:00Z"
        ) == [middle["id"]]

    async def test_pages_with_a_cursor(self, client: httpx.AsyncClient) -> None:
        customer = uuid.uuid4()
        made = [
            await create(client, customer, due_at=f"2027-04-0{day}T09:00Z") for day in (1, 2, 3)
        ]

        first = (
            await client.get(
                "/tasks", params={"customer_id": str(customer), "limit": 2}, headers=agent()
            )
        ).json()
        second = (
            await client.get(
                "/tasks",
                params={"customer_id": str(customer), "limit": 2, "cursor": first["next_cursor"]},
                headers=agent(),
            )
        ).json()

        assert [t["id"] for t in first["items"]] == [made[0]["id"], made[1]["id"]]
        assert [t["id"] for t in second["items"]] == [made[2]["id"]]
        assert second["next_cursor"] is None

    @pytest.mark.parametrize(
        ("query", "pointer"),
        [
            ({"due_from": "2027-01-01T00:00:00"}, "/query/due_from"),
            ({"due_from": "2027-02-01T00:00Z", "due_to": "2027-01-01T00:00Z"}, "/query/due_to"),
            ({"status": "finished"}, "/query/status"),
        ],
    )
    async def test_bad_filters_are_422(
        self, client: httpx.AsyncClient, query: dict[str, str], pointer: str
    ) -> None:
        response = await client.get("/tasks", params=query, headers=agent())

        assert response.status_code == 422
        assert pointers(response) == [pointer]


class TestTaskWorkflow:
    async def test_completing_publishes_task_completed_and_is_final(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        task = await create(client, customer, assignee_id="agent-7")

        done = await client.post(f"/tasks/{task['id']}:complete", headers=agent("agent-9"))
        again = await client.post(f"/tasks/{task['id']}:complete", headers=agent())
        cancel = await client.post(f"/tasks/{task['id']}:cancel", headers=agent())
        patch = await client.patch(f"/tasks/{task['id']}", json={"title": "x"}, headers=agent())

        assert done.status_code == 200
        assert (done.json()["status"], done.json()["completed_by"]) == ("done", "agent-9")
        for refused in (again, cancel, patch):
            assert refused.status_code == 409
            assert refused.headers["content-type"] == PROBLEM_JSON
            assert refused.json()["current_status"] == "done"
        events = await outbox_events(app.state.database, str(customer), COMPLETED)
        assert len(events) == 1
        assert (events[0]["task_id"], events[0]["completed_by"], events[0]["assignee"]) == (
            task["id"],
            "agent-9",
            "agent-7",
        )

    async def test_a_cancelled_task_cannot_be_completed(self, client: httpx.AsyncClient) -> None:
        task = await create(client)

        cancelled = await client.post(f"/tasks/{task['id']}:cancel", headers=agent())
        complete = await client.post(f"/tasks/{task['id']}:complete", headers=agent())

        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["cancelled_at"] is not None
        assert complete.status_code == 409
        assert complete.json()["current_status"] == "cancelled"

    async def test_a_stale_if_match_is_412(self, client: httpx.AsyncClient) -> None:
        task = await create(client)
        await client.patch(f"/tasks/{task['id']}", json={"assignee_id": "a-2"}, headers=agent())

        response = await client.patch(
            f"/tasks/{task['id']}",
            json={"assignee_id": "a-3"},
            headers={**agent(), "If-Match": '"1"'},
        )

        assert response.status_code == 412
        assert response.json()["current_etag"] == '"2"'

    async def test_delete_removes_the_task(self, client: httpx.AsyncClient) -> None:
        task = await create(client)

        deleted = await client.delete(f"/tasks/{task['id']}", headers=agent())
        read = await client.get(f"/tasks/{task['id']}", headers=agent())

        assert deleted.status_code == 204
        assert read.status_code == 404

    async def test_a_task_outside_the_callers_data_scope_is_404(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        await deliver(
            app.state.database,
            CustomerCreated(
                customer_id=customer,
                display_name="Ana",
                owner_id="rep-1",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        )
        task = await create(client, customer)

        mine = await client.get(f"/tasks/{task['id']}", headers=agent("rep-1", scope_mode="own"))
        theirs = await client.get(f"/tasks/{task['id']}", headers=agent("rep-2", scope_mode="own"))

        assert mine.status_code == 200
        assert theirs.status_code == 404


class TestTaskDue:
    async def test_is_published_once_when_the_due_time_comes_and_again_after_rescheduling(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        task = await create(client, customer, assignee_id="agent-4", due_at="2031-05-01T09:00Z")
        due = datetime(2031, 5, 1, 9, tzinfo=UTC)
        clock = Clock(due - timedelta(seconds=1))
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        assert (await scheduler.run_pass()).tasks_due == 0
        clock.at = due
        assert (await scheduler.run_pass()).tasks_due == 1
        assert (await scheduler.run_pass()).tasks_due == 0
        clock.at = due + timedelta(days=3)
        assert (await scheduler.run_pass()).tasks_due == 0

        events = await outbox_events(app.state.database, str(customer), DUE)
        assert len(events) == 1
        assert (events[0]["task_id"], events[0]["assignee"], events[0]["source"]) == (
            task["id"],
            "agent-4",
            "manual",
        )
        assert datetime.fromisoformat(events[0]["due_at"]) == due
        read = (await client.get(f"/tasks/{task['id']}", headers=agent())).json()
        assert datetime.fromisoformat(read["due_notified_at"]) == due

        await client.patch(
            f"/tasks/{task['id']}", json={"due_at": "2031-05-06T09:00Z"}, headers=agent()
        )
        assert (await scheduler.run_pass()).tasks_due == 0
        clock.at = datetime(2031, 5, 6, 9, tzinfo=UTC)
        assert (await scheduler.run_pass()).tasks_due == 1
        assert len(await outbox_events(app.state.database, str(customer), DUE)) == 2

    async def test_a_done_task_is_never_announced(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        task = await create(client, customer, due_at="2031-06-01T09:00Z")
        await client.post(f"/tasks/{task['id']}:complete", headers=agent())

        await CarePlanScheduler(
            app.state.database, now=Clock(datetime(2031, 7, 1, tzinfo=UTC))
        ).run_pass()

        assert await outbox_events(app.state.database, str(customer), DUE) == []


class TestDueBatches:
    async def test_a_pass_claims_at_most_its_batch_size_per_transaction(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        for _ in range(5):
            await create(client, customer, due_at="2032-01-01T09:00Z")
        later = datetime(2032, 1, 2, tzinfo=UTC)

        async with app.state.database.session() as session:
            first = await TaskRepository(session).mark_due(later, 2)
        async with app.state.database.session() as session:
            second = await TaskRepository(session).mark_due(later, 2)
        scheduler = CarePlanScheduler(app.state.database, now=Clock(later), batch_size=2)

        assert (len(first), len(second)) == (2, 2)
        assert (await scheduler.run_pass()).tasks_due == 1
        assert len(await outbox_events(app.state.database, str(customer), DUE)) == 1


class TestCustomerEvents:
    async def test_merge_repoints_tasks_to_the_survivor(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = uuid.uuid4(), uuid.uuid4()
        task = await create(client, duplicate)

        await deliver(
            app.state.database,
            CustomerMerged(
                customer_id=survivor,
                merged_id=duplicate,
                merged_by="admin",
                merged_at=datetime.now(UTC),
            ),
        )

        read = (await client.get(f"/tasks/{task['id']}", headers=agent())).json()
        assert read["customer_id"] == str(survivor)

    async def test_erase_anonymises_and_cancels_open_tasks(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = uuid.uuid4()
        open_task = await create(client, customer, title="Call Ana", notes="private")
        done_task = await create(client, customer, title="Visit Ana")
        await client.post(f"/tasks/{done_task['id']}:complete", headers=agent())
        erased_at = datetime(2026, 11, 23, 12, tzinfo=UTC)

        await deliver(app.state.database, CustomerErased(customer_id=customer, erased_at=erased_at))

        first = (await client.get(f"/tasks/{open_task['id']}", headers=agent())).json()
        second = (await client.get(f"/tasks/{done_task['id']}", headers=agent())).json()
        assert (first["title"], first["notes"], first["status"]) == ("[erased]", None, "cancelled")
        assert datetime.fromisoformat(first["cancelled_at"]) == erased_at
        assert (second["title"], second["status"]) == ("[erased]", "done")
