import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, select, text

from services.interactions.careplan.repository import RuleRepository
from services.interactions.careplan.scheduler import CarePlanScheduler
from services.interactions.config import Settings
from services.interactions.main import create_app
from services.interactions.models import CarePlanRule, Task
from shared.db import Database
from shared.errors import PROBLEM_JSON
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    OrderPlaced,
    SegmentEntered,
    SegmentExited,
)
from tests.services.interactions.careplan_support import Clock, deliver, outbox_events
from tests.support import api_client, bearer, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

DUE = "rapport.interaction.task_due.v1"
TRIGGERED = "rapport.interaction.care_plan_triggered.v1"
#: Occasions are in a year after the rules' creation (rules never fire for earlier ones);
#: 2029 is not a leap year.
Y = 2029


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(
        make_settings(Settings, sla_scheduler_enabled=False, care_plan_scheduler_enabled=False)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def admin() -> dict[str, str]:
    return bearer("interactions:read", "interactions:write", "customers:pii", "admin")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def make_rule(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/care-plans/rules", json={"name": "r", **body}, headers=admin())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def rule_tasks(client: httpx.AsyncClient, rule: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get("/tasks", params={"rule_id": rule["id"]}, headers=admin())
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def customer(
    customer_id: uuid.UUID, *, birthday: date | None = None, **fields: Any
) -> CustomerCreated:
    return CustomerCreated(
        customer_id=customer_id,
        display_name="Wei",
        created_at=at(2026, 1, 1),
        birthday=birthday,
        **fields,
    )


class TestRuleApi:
    async def test_creates_reads_lists_replaces_and_deletes_a_rule(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await make_rule(
            client, name="Follow up", type="post_purchase", days_after=7, due_time="10:30"
        )
        assert (created["type"], created["days_after"], created["due_time"]) == (
            "post_purchase",
            7,
            "10:30:00",
        )
        assert (created["action"], created["assign_to"], created["active"]) == (
            "task",
            "owner",
            True,
        )

        read = await client.get(f"/care-plans/rules/{created['id']}", headers=admin())
        assert read.status_code == 200
        assert read.headers["etag"] == '"1"'
        listed = await client.get(
            "/care-plans/rules", params={"type": "post_purchase"}, headers=admin()
        )
        assert created["id"] in [r["id"] for r in listed.json()["items"]]

        replaced = await client.put(
            f"/care-plans/rules/{created['id']}",
            json={
                "name": "Revisit",
                "type": "periodic_revisit",
                "every_days": 14,
                "lifecycle_stage": "vip",
            },
            headers={**admin(), "If-Match": '"1"'},
        )
        assert replaced.status_code == 200, replaced.text
        body = replaced.json()
        assert (body["type"], body["every_days"], body["days_after"], body["version"]) == (
            "periodic_revisit",
            14,
            None,
            2,
        )
        stale = await client.put(
            f"/care-plans/rules/{created['id']}",
            json={"name": "x", "type": "birthday"},
            headers={**admin(), "If-Match": '"1"'},
        )
        assert stale.status_code == 412

        deleted = await client.delete(f"/care-plans/rules/{created['id']}", headers=admin())
        assert deleted.status_code == 204
        gone = await client.get(f"/care-plans/rules/{created['id']}", headers=admin())
        assert gone.status_code == 404

    async def test_only_admins_change_rules(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/care-plans/rules",
            json={"name": "x", "type": "birthday"},
            headers=bearer("interactions:read", "interactions:write"),
        )

        assert response.status_code == 403

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"type": "anniversary"}, "/body"),
            ({}, "/body"),
            (
                {"type": "periodic_revisit", "every_days": 0, "segment_id": str(uuid.uuid4())},
                "/body/periodic_revisit/every_days",
            ),
            (
                {"type": "periodic_revisit", "every_days": -3, "lifecycle_stage": "vip"},
                "/body/periodic_revisit/every_days",
            ),
            ({"type": "periodic_revisit", "every_days": 30}, "/body/periodic_revisit"),
            ({"type": "post_purchase", "days_after": 0}, "/body/post_purchase/days_after"),
            ({"type": "post_purchase"}, "/body/post_purchase/days_after"),
            ({"type": "low_csat", "csat_threshold": 5}, "/body/low_csat/csat_threshold"),
            ({"type": "low_csat", "days_after": -1}, "/body/low_csat/days_after"),
            ({"type": "holiday", "dates": ["02-30"]}, "/body/holiday/dates"),
            ({"type": "holiday", "dates": ["2026-13-01"]}, "/body/holiday/dates"),
            ({"type": "holiday", "dates": ["12/25"]}, "/body/holiday/dates"),
            ({"type": "holiday", "dates": []}, "/body/holiday/dates"),
            ({"type": "birthday", "due_time": "25:00"}, "/body/birthday/due_time"),
            ({"type": "birthday", "assign_to": "fixed"}, "/body/birthday"),
            ({"type": "birthday", "action": "sms"}, "/body/birthday/action"),
            ({"type": "birthday", "every_days": 3}, "/body/birthday/every_days"),
        ],
    )
    async def test_bad_rules_are_422_problems(
        self, client: httpx.AsyncClient, body: dict[str, Any], pointer: str
    ) -> None:
        response = await client.post(
            "/care-plans/rules", json={"name": "bad", **body}, headers=admin()
        )

        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert [e["pointer"] for e in response.json()["errors"]] == [pointer]

    async def test_a_deleted_rule_leaves_its_tasks(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        someone = uuid.uuid4()
        await deliver(app.state.database, customer(someone, birthday=date(1990, 7, 1)))
        rule = await make_rule(client, type="birthday")
        await CarePlanScheduler(app.state.database, now=Clock(at(Y, 7, 1, 12))).run_pass()
        [task] = await rule_tasks(client, rule)

        await client.delete(f"/care-plans/rules/{rule['id']}", headers=admin())

        read = (await client.get(f"/tasks/{task['id']}", headers=admin())).json()
        assert (read["rule_id"], read["rule_type"], read["status"]) == (None, "birthday", "open")


class TestBirthday:
    async def test_creates_one_task_on_the_local_birthday_due_at_local_time(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        wei = uuid.uuid4()
        await deliver(
            app.state.database,
            customer(wei, birthday=date(1990, 5, 17), timezone="Asia/Shanghai", owner_id="rep-5"),
        )
        rule = await make_rule(client, type="birthday", due_time="09:00")
        clock = Clock(at(Y, 5, 16, 15, 59))  # 23:59 on the 16th in Shanghai
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        assert (await scheduler.run_pass()).tasks_created == 0
        clock.at = at(Y, 5, 16, 16, 0)  # midnight on the 17th in Shanghai
        assert (await scheduler.run_pass()).tasks_created == 1
        assert (await scheduler.run_pass()).tasks_created == 0  # a restart: nothing new

        [task] = await rule_tasks(client, rule)
        assert (task["customer_id"], task["assignee_id"], task["title"]) == (
            str(wei),
            "rep-5",
            "Birthday greeting",
        )
        assert (task["source"], task["rule_type"], task["occurs_on"]) == (
            "care_plan",
            "birthday",
            f"{Y}-05-17",
        )
        due = at(Y, 5, 17, 1, 0)  # 09:00 in Shanghai
        assert datetime.fromisoformat(task["due_at"]) == due

        clock.at = due - timedelta(seconds=1)
        assert (await scheduler.run_pass()).tasks_due == 0
        clock.at = due
        assert (await scheduler.run_pass()).tasks_due == 1
        clock.at = due + timedelta(hours=5)
        assert (await scheduler.run_pass()).tasks_due == 0
        [event] = await outbox_events(app.state.database, str(wei), DUE)
        assert (event["task_id"], event["rule_id"], event["rule_type"], event["occurs_on"]) == (
            task["id"],
            rule["id"],
            "birthday",
            f"{Y}-05-17",
        )
        assert event["source"] == "care_plan"

    async def test_a_29_february_birthday_is_greeted_on_the_28th_in_other_years(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        leapling = uuid.uuid4()
        await deliver(app.state.database, customer(leapling, birthday=date(2000, 2, 29)))
        rule = await make_rule(client, type="birthday", assign_to="fixed", assignee_id="agent-2")

        await CarePlanScheduler(app.state.database, now=Clock(at(Y, 2, 28, 0, 1))).run_pass()

        [task] = await rule_tasks(client, rule)
        assert (task["occurs_on"], task["assignee_id"]) == (f"{Y}-02-28", "agent-2")

    async def test_an_occasion_missed_longer_than_the_catch_up_window_is_skipped(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        late = uuid.uuid4()
        await deliver(app.state.database, customer(late, birthday=date(1985, 9, 1)))
        rule = await make_rule(client, type="birthday")

        await CarePlanScheduler(
            app.state.database, now=Clock(at(Y, 9, 9, 12)), catch_up_days=7
        ).run_pass()
        assert await rule_tasks(client, rule) == []
        await CarePlanScheduler(
            app.state.database, now=Clock(at(Y, 9, 8, 12)), catch_up_days=7
        ).run_pass()
        assert [t["occurs_on"] for t in await rule_tasks(client, rule)] == [f"{Y}-09-01"]

    async def test_a_birthday_changed_by_customer360_is_followed(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ana = uuid.uuid4()
        await deliver(
            app.state.database,
            customer(ana, birthday=date(1990, 3, 3)),
            CustomerUpdated(
                customer_id=ana, changes={"birthday": "1990-03-04"}, updated_at=at(2026, 2, 1)
            ),
        )
        rule = await make_rule(client, type="birthday")
        scheduler = CarePlanScheduler(app.state.database, now=Clock(at(Y, 3, 3, 12)))

        await scheduler.run_pass()
        assert await rule_tasks(client, rule) == []
        scheduler.now = Clock(at(Y, 3, 4, 12))
        await scheduler.run_pass()
        assert [t["occurs_on"] for t in await rule_tasks(client, rule)] == [f"{Y}-03-04"]


class TestHolidayEventOnly:
    async def test_publishes_care_plan_triggered_per_customer_in_their_own_calendar(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        london, los_angeles = uuid.uuid4(), uuid.uuid4()
        await deliver(
            app.state.database,
            customer(london),
            customer(los_angeles, timezone="America/Los_Angeles"),
        )
        rule = await make_rule(
            client, name="Xmas", type="holiday", dates=["12-25"], action="event", due_time="10:00"
        )
        clock = Clock(at(Y, 12, 25, 0, 0))
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        first = await scheduler.run_pass()
        clock.at = at(Y, 12, 25, 8, 0)  # midnight in Los Angeles
        second = await scheduler.run_pass()
        third = await scheduler.run_pass()

        assert first.events_triggered >= 1  # every known UTC customer gets it
        assert (second.events_triggered, third.events_triggered) == (1, 0)
        assert (first.tasks_created, second.tasks_created) == (0, 0)
        assert await rule_tasks(client, rule) == []
        [uk] = await outbox_events(app.state.database, str(london), TRIGGERED)
        [us] = await outbox_events(app.state.database, str(los_angeles), TRIGGERED)
        assert (uk["rule_id"], uk["rule_type"], uk["rule_name"], uk["occurs_on"]) == (
            rule["id"],
            "holiday",
            "Xmas",
            f"{Y}-12-25",
        )
        assert datetime.fromisoformat(uk["due_at"]) == at(Y, 12, 25, 10)
        assert datetime.fromisoformat(us["due_at"]) == at(Y, 12, 25, 18)  # 10:00 PST


class TestPostPurchase:
    async def test_follows_up_n_days_after_an_order_once_per_day_of_orders(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        buyer = uuid.uuid4()

        def order(placed_at: datetime) -> OrderPlaced:
            return OrderPlaced(
                customer_id=buyer,
                order_id=uuid.uuid4(),
                total="10.00",  # type: ignore[arg-type]
                currency="EUR",
                channel="web",
                placed_at=placed_at,
            )

        await deliver(
            app.state.database,
            order(at(Y, 3, 1, 10)),
            order(at(Y, 3, 1, 18)),
            order(at(Y, 3, 2, 9)),
        )
        rule = await make_rule(
            client, type="post_purchase", days_after=3, assign_to="fixed", assignee_id="care"
        )
        clock = Clock(at(Y, 3, 3, 23, 59))
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        assert (await scheduler.run_pass()).tasks_created == 0
        clock.at = at(Y, 3, 4, 0, 0)
        assert (await scheduler.run_pass()).tasks_created == 1
        clock.at = at(Y, 3, 5, 0, 0)
        assert (await scheduler.run_pass()).tasks_created == 1
        assert (await scheduler.run_pass()).tasks_created == 0

        tasks = await rule_tasks(client, rule)
        assert [(t["occurs_on"], t["assignee_id"], t["customer_id"]) for t in tasks] == [
            (f"{Y}-03-04", "care", str(buyer)),
            (f"{Y}-03-05", "care", str(buyer)),
        ]
        assert datetime.fromisoformat(tasks[0]["due_at"]) == at(Y, 3, 4, 9)  # UTC: unknown tz


class TestLowCsat:
    async def test_checks_in_after_a_score_at_or_below_the_threshold(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        unhappy, lukewarm = uuid.uuid4(), uuid.uuid4()
        rule = await make_rule(
            client, type="low_csat", csat_threshold=2, days_after=1, assignee_id="duty"
        )
        for who, score in ((unhappy, 2), (lukewarm, 3)):
            response = await client.post(
                "/surveys/responses",
                json={"customer_id": str(who), "survey": "csat", "score": score},
                headers=admin(),
            )
            assert response.status_code == 201
        answered = datetime.fromisoformat(response.json()["answered_at"]).astimezone(UTC)
        next_day = datetime.combine(answered.date() + timedelta(days=1), datetime.min.time(), UTC)
        clock = Clock(next_day - timedelta(seconds=1))
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        assert (await scheduler.run_pass()).tasks_created == 0
        clock.at = next_day
        assert (await scheduler.run_pass()).tasks_created == 1
        assert (await scheduler.run_pass()).tasks_created == 0

        [task] = await rule_tasks(client, rule)
        # No owner known: the rule's assignee stands in.
        assert (task["customer_id"], task["assignee_id"], task["occurs_on"]) == (
            str(unhappy),
            "duty",
            next_day.date().isoformat(),
        )
        assert task["title"] == "Check in after a low satisfaction score"


class TestPeriodicRevisit:
    async def test_revisits_segment_members_every_n_days_while_they_stay(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        vip, segment = uuid.uuid4(), uuid.uuid4()
        await deliver(
            app.state.database,
            SegmentEntered(customer_id=vip, segment_id=segment, entered_at=at(Y, 1, 10, 12)),
        )
        rule = await make_rule(
            client, type="periodic_revisit", every_days=30, segment_id=str(segment)
        )
        clock = Clock(at(Y, 2, 8, 23, 59))
        scheduler = CarePlanScheduler(app.state.database, now=clock)

        assert (await scheduler.run_pass()).tasks_created == 0
        clock.at = at(Y, 2, 9, 0, 0)  # 30 days after entering
        assert (await scheduler.run_pass()).tasks_created == 1
        clock.at = at(Y, 2, 20)
        assert (await scheduler.run_pass()).tasks_created == 0
        clock.at = at(Y, 3, 11, 6)
        assert (await scheduler.run_pass()).tasks_created == 1
        await deliver(
            app.state.database,
            SegmentExited(customer_id=vip, segment_id=segment, exited_at=at(Y, 3, 12)),
        )
        clock.at = at(Y, 4, 10, 6)
        assert (await scheduler.run_pass()).tasks_created == 0

        assert [t["occurs_on"] for t in await rule_tasks(client, rule)] == [
            f"{Y}-02-09",
            f"{Y}-03-11",
        ]

    async def test_revisits_a_lifecycle_stage_counted_from_entering_it(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        risky = uuid.uuid4()
        stage = f"at_risk_{uuid.uuid4().hex[:6]}"
        await deliver(
            app.state.database,
            customer(risky, lifecycle_stage="customer"),
            CustomerUpdated(
                customer_id=risky, changes={"lifecycle_stage": stage}, updated_at=at(Y, 1, 5, 8)
            ),
        )
        rule = await make_rule(client, type="periodic_revisit", every_days=7, lifecycle_stage=stage)

        await CarePlanScheduler(app.state.database, now=Clock(at(Y, 1, 12, 1))).run_pass()

        assert [t["occurs_on"] for t in await rule_tasks(client, rule)] == [f"{Y}-01-12"]


class TestCustomerEvents:
    async def test_a_merged_duplicate_does_not_fire_an_occasion_twice(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = uuid.uuid4(), uuid.uuid4()
        await deliver(
            app.state.database,
            customer(survivor, birthday=date(1970, 6, 6)),
            customer(duplicate, birthday=date(1970, 6, 6)),
        )
        rule = await make_rule(client, type="birthday")
        scheduler = CarePlanScheduler(app.state.database, now=Clock(at(Y, 6, 6, 3)))
        await scheduler.run_pass()
        assert len(await rule_tasks(client, rule)) == 2

        await deliver(
            app.state.database,
            CustomerMerged(
                customer_id=survivor, merged_id=duplicate, merged_by="admin", merged_at=at(Y, 6, 6)
            ),
        )
        await scheduler.run_pass()

        tasks = await rule_tasks(client, rule)
        assert [t["customer_id"] for t in tasks] == [str(survivor), str(survivor)]

    async def test_an_erased_customer_is_forgotten_and_gets_no_more_tasks(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        gone = uuid.uuid4()
        await deliver(app.state.database, customer(gone, birthday=date(1970, 10, 10)))
        rule = await make_rule(client, type="birthday")

        await deliver(
            app.state.database, CustomerErased(customer_id=gone, erased_at=at(2026, 5, 1))
        )
        await CarePlanScheduler(app.state.database, now=Clock(at(Y, 10, 10, 12))).run_pass()

        assert await rule_tasks(client, rule) == []
        async with app.state.database.session() as session:
            left = await session.scalar(
                text("SELECT count(*) FROM interactions.care_plan_customer WHERE customer_id = :c"),
                {"c": gone},
            )
        assert left == 0


class TestTwoSchedulersRacing:
    async def test_never_create_a_task_twice(self, infra: Any) -> None:
        # Two replicas: two engines on the same database, committing for real.
        a = Database(infra.database_url, schema="interactions", application_name="care-a")
        b = Database(infra.database_url, schema="interactions", application_name="care-b")
        people = [uuid.uuid4() for _ in range(45)]
        rule_id = uuid.uuid4()
        now = datetime.now(UTC)
        try:
            await deliver(a, *(customer(p, birthday=date(1980, 8, 1)) for p in people))
            async with a.session() as session:
                await RuleRepository(session).add(
                    CarePlanRule(
                        id=rule_id,
                        name="race",
                        type="birthday",
                        created_by="test",
                        created_at=now,
                        updated_at=now,
                        version=1,
                    )
                )
            clock = Clock(at(Y, 8, 1, 12))
            one = CarePlanScheduler(a, now=clock, batch_size=7)
            two = CarePlanScheduler(b, now=clock, batch_size=7)

            results = await asyncio.gather(*(s.run_pass() for s in (one, two, one, two)))

            async with a.session() as session:
                per_customer = (
                    await session.execute(
                        select(Task.customer_id, func.count())
                        .where(Task.rule_id == rule_id)
                        .group_by(Task.customer_id)
                    )
                ).all()
            assert sum(r.tasks_created for r in results) == len(per_customer)
            assert {c for c, _ in per_customer} >= set(people)
            assert {n for _, n in per_customer} == {1}
            assert (await one.run_pass()).tasks_created == 0
            assert (await two.run_pass()).tasks_created == 0
        finally:
            async with a.session() as session:
                await session.execute(
                    text("DELETE FROM interactions.task WHERE rule_id = :r"), {"r": rule_id}
                )
                await session.execute(
                    text("DELETE FROM interactions.care_plan_rule WHERE id = :r"), {"r": rule_id}
                )
                for table in ("care_plan_customer", "customer_scope"):
                    await session.execute(
                        text(f"DELETE FROM interactions.{table} WHERE customer_id = ANY(:p)"),
                        {"p": people},
                    )
            await a.dispose()
            await b.dispose()

    async def test_the_occasion_key_stops_a_concurrent_duplicate_even_without_the_rule_lock(
        self, infra: Any
    ) -> None:
        a = Database(infra.database_url, schema="interactions", application_name="care-a")
        b = Database(infra.database_url, schema="interactions", application_name="care-b")
        person, rule_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
        clock_at = at(Y, 8, 2, 12)
        try:
            await deliver(a, customer(person, birthday=date(1980, 8, 2)))
            async with a.session() as session:
                rule = await RuleRepository(session).add(
                    CarePlanRule(
                        id=rule_id,
                        name="race",
                        type="birthday",
                        created_by="test",
                        created_at=now,
                        updated_at=now,
                        version=1,
                    )
                )

            async def fire_in_b() -> int:
                async with b.session() as session:
                    fired = await RuleRepository(session).fire(
                        rule, clock_at, catch_up_days=7, limit=100
                    )
                    return len([f for f in fired if f.customer_id == person])

            async with a.session() as session:
                fired_a = await RuleRepository(session).fire(
                    rule, clock_at, catch_up_days=7, limit=100
                )
                # B runs the same statement while A's insert is uncommitted: it waits on the
                # key and, once A commits, inserts nothing.
                racing = asyncio.create_task(fire_in_b())
                await asyncio.sleep(0.3)
                assert not racing.done()
            fired_b = await racing

            assert [f.customer_id for f in fired_a if f.customer_id == person] == [person]
            assert fired_b == 0
            async with a.session() as session:
                count = await session.scalar(
                    select(func.count()).where(Task.rule_id == rule_id, Task.customer_id == person)
                )
            assert count == 1
        finally:
            async with a.session() as session:
                await session.execute(
                    text("DELETE FROM interactions.task WHERE rule_id = :r"), {"r": rule_id}
                )
                await session.execute(
                    text("DELETE FROM interactions.care_plan_rule WHERE id = :r"), {"r": rule_id}
                )
                for table in ("care_plan_customer", "customer_scope"):
                    await session.execute(
                        text(f"DELETE FROM interactions.{table} WHERE customer_id = :p"),
                        {"p": person},
                    )
            await a.dispose()
            await b.dispose()


class TestSchedulerInTheService:
    async def test_runs_in_the_app_lifespan_and_stops_with_it(self, make_settings: Any) -> None:
        app = create_app(
            make_settings(
                Settings, sla_scheduler_enabled=False, care_plan_scheduler_interval_s=0.02
            )
        )

        async with running(app):
            scheduler = app.state.care_plan_scheduler
            task = scheduler._task
            assert task is not None
            await asyncio.sleep(0.1)
            assert not task.done()
        assert task.cancelled()
        assert scheduler._task is None

    async def test_can_be_switched_off(self, make_settings: Any) -> None:
        app = create_app(make_settings(Settings, care_plan_scheduler_enabled=False))

        async with running(app):
            assert not hasattr(app.state, "care_plan_scheduler")
