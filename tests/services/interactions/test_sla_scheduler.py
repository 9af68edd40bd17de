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

from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.ticket import service
from services.interactions.ticket.repository import TicketRepository
from services.interactions.ticket.scheduler import SlaScheduler
from services.interactions.ticket.schemas import TicketCreate
from shared.db import Database
from tests.support import api_client, bearer, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

BREACHED = "rapport.interaction.ticket_sla_breached.v1"


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, sla_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def agent() -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii", "admin")


class Clock:
    """A controllable ``now()`` for the scheduler."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def breach_events(database: Database, customer_ids: list[str]) -> list[dict[str, Any]]:
    async with database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT headers, payload FROM interactions.outbox "
                    "WHERE key = ANY(:keys) ORDER BY id"
                ),
                {"keys": customer_ids},
            )
        ).all()
    return [json.loads(p) for h, p in rows if dict(h)["ce_type"] == BREACHED]


class TestSlaScheduler:
    async def test_records_each_breach_once_when_the_clock_passes_its_due_time(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        response = await client.post(
            "/tickets",
            json={
                "customer_id": str(customer_id),
                "title": "Checkout fails",
                "category": "incident",
                "priority": "urgent",
            },
            headers=agent(),
        )
        ticket = response.json()
        await client.patch(
            f"/tickets/{ticket['id']}", json={"assignee_id": "agent-3"}, headers=agent()
        )
        first_due = datetime.fromisoformat(ticket["first_response_due_at"])
        resolution_due = datetime.fromisoformat(ticket["resolution_due_at"])
        clock = Clock(first_due - timedelta(seconds=1))
        scheduler = SlaScheduler(app.state.database, now=clock)

        assert await scheduler.run_once() == 0
        clock.at = first_due
        assert await scheduler.run_once() == 1
        assert await scheduler.run_once() == 0  # already recorded: nothing new
        clock.at = resolution_due + timedelta(minutes=1)
        assert await scheduler.run_once() == 1
        assert await scheduler.run_once() == 0

        events = await breach_events(app.state.database, [str(customer_id)])
        assert [(e["target"], e["ticket_id"]) for e in events] == [
            ("first_response", ticket["id"]),
            ("resolution", ticket["id"]),
        ]
        assert datetime.fromisoformat(events[0]["due_at"]) == first_due
        assert datetime.fromisoformat(events[0]["breached_at"]) == first_due
        assert events[0]["priority"] == "urgent"
        assert events[0]["assignee"] == "agent-3"
        assert datetime.fromisoformat(events[1]["due_at"]) == resolution_due
        stored = (await client.get(f"/tickets/{ticket['id']}", headers=agent())).json()
        assert datetime.fromisoformat(stored["first_response_breached_at"]) == first_due
        assert datetime.fromisoformat(stored["resolution_breached_at"]) == clock.at

    async def test_an_answered_or_resolved_ticket_does_not_breach(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        body = {"customer_id": str(customer_id), "title": "Hi", "category": "question"}
        answered = (await client.post("/tickets", json=body, headers=agent())).json()
        resolved = (await client.post("/tickets", json=body, headers=agent())).json()
        await client.post(
            f"/tickets/{answered['id']}/comments", json={"body": "Hello!"}, headers=agent()
        )
        await client.post(
            f"/tickets/{resolved['id']}:transition", json={"to": "resolved"}, headers=agent()
        )
        far = datetime.fromisoformat(answered["opened_at"]) + timedelta(days=30)

        await SlaScheduler(app.state.database, now=Clock(far)).run_once()

        events = await breach_events(app.state.database, [str(customer_id)])
        # Only the answered ticket's resolution target can still be missed.
        assert [(e["ticket_id"], e["target"]) for e in events] == [(answered["id"], "resolution")]


class TestBatches:
    async def test_a_scan_marks_at_most_its_batch_size(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        # Regression: as `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` the LIMIT did not
        # hold (PostgreSQL re-ran the subquery), so one pass marked every due ticket at once.
        body = {
            "customer_id": str(uuid.uuid4()),
            "title": "x",
            "category": "incident",
            "priority": "urgent",
        }
        opened = [
            (await client.post("/tickets", json=body, headers=agent())).json() for _ in range(5)
        ]
        far = datetime.fromisoformat(opened[0]["opened_at"]) + timedelta(days=1)

        async with app.state.database.session() as session:
            marked = await TicketRepository(session).mark_breaches("first_response", far, 2)

        assert len(marked) == 2


class TestTwoSchedulersRacing:
    async def test_publish_exactly_one_event_per_breach(self, infra: Any) -> None:
        # Two replicas: two engines on the same database, committing for real.
        a = Database(infra.database_url, schema="interactions", application_name="sla-a")
        b = Database(infra.database_url, schema="interactions", application_name="sla-b")
        opened = datetime.now(UTC) - timedelta(days=10)
        customers = [str(uuid.uuid4()) for _ in range(60)]
        try:
            async with a.session() as session:
                for customer in customers:
                    await service.open_ticket(
                        session,
                        TicketCreate.model_validate(
                            {
                                "customer_id": customer,
                                "title": "race",
                                "category": "incident",
                                "priority": "urgent",
                            }
                        ),
                        opened,
                    )
            clock = Clock(datetime.now(UTC))
            one = SlaScheduler(a, now=clock, batch_size=7)
            two = SlaScheduler(b, now=clock, batch_size=7)

            counts = await asyncio.gather(*(s.run_once() for s in (one, two, one, two)))

            events = await breach_events(a, customers)
            assert sum(counts) == 120  # 60 tickets x (first response + resolution)
            assert len(events) == 120
            assert len({(e["ticket_id"], e["target"]) for e in events}) == 120
            assert await one.run_once() == 0
            assert await two.run_once() == 0
        finally:
            async with a.session() as session:
                await session.execute(
                    text("DELETE FROM interactions.outbox WHERE key = ANY(:k)"), {"k": customers}
                )
                await session.execute(
                    text("DELETE FROM interactions.ticket WHERE customer_id::text = ANY(:k)"),
                    {"k": customers},
                )
            await a.dispose()
            await b.dispose()


class TestSchedulerInTheService:
    async def test_runs_in_the_app_lifespan_and_stops_with_it(self, make_settings: Any) -> None:
        app = create_app(make_settings(Settings, sla_scheduler_interval_s=0.02))

        async with running(app):
            scheduler = app.state.sla_scheduler
            task = scheduler._task
            assert task is not None
            await asyncio.sleep(0.1)  # a few passes over an empty backlog
            assert not task.done()
        assert task.cancelled()
        assert scheduler._task is None

    async def test_can_be_switched_off(self, make_settings: Any) -> None:
        app = create_app(make_settings(Settings, sla_scheduler_enabled=False))

        async with running(app):
            assert not hasattr(app.state, "sla_scheduler")
