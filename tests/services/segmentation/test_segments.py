"""Segments through the API: dynamic and static, preview, members, export, the customer's
segments; membership kept up to date by events and by the scheduler."""

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
from sqlalchemy import select, text, update

from services.segmentation.config import Settings
from services.segmentation.main import create_app
from services.segmentation.models import CustomerFeatures, SegmentMember
from services.segmentation.segments.membership import reevaluate
from services.segmentation.segments.scheduler import MembershipScheduler
from services.segmentation.subscriptions import subscriptions
from shared.errors import PROBLEM_JSON
from shared.events import CustomerCreated, CustomerErased, Envelope, Event, OrderPlaced
from tests.support import api_client, bearer, until_a_backend_waits_for_a_lock

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("segments:read", "segments:write")
READ = bearer("segments:read")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, membership_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def deliver(app: FastAPI, event: Event) -> None:
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))


async def customer(app: FastAPI, tag: str, *orders: str, days_ago: float = 1) -> uuid.UUID:
    """A customer tagged ``tag`` with one EUR order per amount in ``orders``."""
    customer_id = uuid.uuid4()
    await deliver(
        app,
        CustomerCreated(
            customer_id=customer_id,
            display_name="Test",
            tags=[tag],
            created_at=datetime.now(UTC),
        ),
    )
    for total in orders:
        await deliver(app, order(customer_id, total, days_ago=days_ago))
    return customer_id


def order(customer_id: uuid.UUID, total: str, *, days_ago: float = 1) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=uuid.uuid4(),
        total=Decimal(total),
        currency="EUR",
        channel="web",
        placed_at=datetime.now(UTC) - timedelta(days=days_ago),
    )


async def segment_events(app: FastAPI, customer_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """The customer's SegmentEntered/SegmentExited events (not their CustomerScored ones)."""
    async with app.state.database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT headers, payload FROM segmentation.outbox WHERE key = :key "
                    "AND topic = 'rapport.segment.v1' ORDER BY id"
                ),
                {"key": str(customer_id)},
            )
        ).all()
    kinds = [(dict(h)["ce_type"].split(".")[2], json.loads(p)) for h, p in rows]
    return [(kind, data) for kind, data in kinds if kind in ("entered", "exited")]


def spent_at_least(tag: str, amount: str) -> dict[str, Any]:
    return {
        "all": [
            {"field": "tags", "op": "contains", "value": tag},
            {"field": "total_spent.EUR", "op": "gte", "value": amount},
        ]
    }


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/segments", json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreateDynamicSegment:
    async def test_takes_its_members_at_once_and_publishes_their_entry(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        big = await customer(app, tag, "150.00")
        small = await customer(app, tag, "50.00")
        await customer(app, "other", "500.00")

        created = await create(client, {"name": "Big", "rule": spent_at_least(tag, "100")})

        assert created["version"] == 1
        assert created["kind"] == "dynamic"
        assert created["time_relative"] is False
        assert created["recomputed"] == [
            {"segment_id": created["id"], "version": 1, "entered": 1, "exited": 0}
        ]
        entered = [d for t, d in await segment_events(app, big) if d["segment_id"] == created["id"]]
        assert [e["segment_version"] for e in entered] == [1]
        assert await segment_events(app, small) == []
        got = await client.get(f"/segments/{created['id']}", headers=READ)
        assert got.json()["member_count"] == 1
        members = await client.get(f"/segments/{created['id']}/members", headers=READ)
        assert [m["customer_id"] for m in members.json()["items"]] == [str(big)]
        mine = await client.get(f"/customers/{big}/segments", headers=READ)
        assert [(s["segment_id"], s["name"], s["version"]) for s in mine.json()] == [
            (created["id"], "Big", 1)
        ]

    async def test_answers_422_pointing_at_each_bad_node(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/segments",
            json={
                "name": "Broken",
                "rule": {
                    "all": [
                        {"field": "order_count", "op": "gte", "value": 1},
                        {"field": "last_order_at", "op": "after", "value": 30},
                        {"field": "favourite_colour", "op": "eq", "value": "red"},
                        {"field": "order_count", "op": "resembles", "value": 1},
                    ]
                },
            },
            headers=WRITE,
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["type"] == "/problems/validation-failed"
        assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
            ("/body/rule/all/1/value", "type-mismatch"),
            ("/body/rule/all/2/field", "unknown-field"),
            ("/body/rule/all/3/op", "unknown-operator"),
        ]
        listed = await client.get("/segments", headers=READ)
        assert "Broken" not in [s["name"] for s in listed.json()["items"]]

    async def test_refuses_a_rule_for_a_static_segment(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/segments",
            json={"name": "x", "kind": "static", "rule": {"field": "tags", "op": "exists"}},
            headers=WRITE,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/body"

    async def test_refuses_a_caller_without_the_write_scope(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/segments", json={"name": "x", "rule": {"field": "tags", "op": "exists"}}, headers=READ
        )
        assert response.status_code == 403


class TestIncrementalMembership:
    async def test_an_order_brings_the_customer_in_and_a_later_change_takes_them_out(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        created = await create(
            client,
            {
                "name": "Spent 100, e-mail not refused",
                "rule": {
                    "all": [
                        *spent_at_least(tag, "100")["all"],
                        # not "ne false": a condition on a missing value is false, and
                        # this customer was never asked
                        {"not": {"field": "email_consent", "op": "eq", "value": False}},
                    ]
                },
            },
        )
        someone = await customer(app, tag, "60.00")
        assert await segment_events(app, someone) == []

        await deliver(app, order(someone, "40.00"))

        events = await segment_events(app, someone)
        assert [(t, d["segment_id"]) for t, d in events] == [("entered", created["id"])]

        from shared.events import CustomerConsentChanged

        await deliver(
            app,
            CustomerConsentChanged(
                customer_id=someone, channel="email", granted=False, changed_at=datetime.now(UTC)
            ),
        )
        events = await segment_events(app, someone)
        assert [(t, d["segment_id"]) for t, d in events] == [
            ("entered", created["id"]),
            ("exited", created["id"]),
        ]
        mine = await client.get(f"/customers/{someone}/segments", headers=READ)
        assert mine.json() == []

    async def test_the_scheduler_takes_out_whoever_time_disqualifies(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        recent = await customer(app, tag, "10.00", days_ago=28)
        created = await create(
            client,
            {
                "name": "Ordered in the last 30 days",
                "rule": {
                    "all": [
                        {"field": "tags", "op": "contains", "value": tag},
                        {"field": "orders_30d", "op": "gte", "value": 1},
                    ]
                },
            },
        )
        assert created["time_relative"] is True
        assert created["recomputed"][0]["entered"] == 1
        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, recent)
            assert row is not None
            assert row.orders_30d == 1
            assert row.recheck_at is not None
            due = row.recheck_at
        # two days later the order has left the 30-day window
        assert datetime.now(UTC) + timedelta(days=1) < due < datetime.now(UTC) + timedelta(days=3)
        later = due + timedelta(minutes=1)
        checked, _ = await MembershipScheduler(app.state.database, now=lambda: later).run_once()

        assert checked >= 1
        events = await segment_events(app, recent)
        assert [t for t, d in events if d["segment_id"] == created["id"]] == ["entered", "exited"]
        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, recent)
            assert row is not None
            assert row.orders_30d == 0
            assert row.orders_90d == 1

    async def test_the_scheduler_brings_in_whoever_time_qualifies(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        lapsing = await customer(app, tag, "10.00", days_ago=170)
        lapsed = await create(
            client,
            {
                "name": "No order for 180 days, but a web order within 200",
                "rule": {
                    "all": [
                        {"field": "tags", "op": "contains", "value": tag},
                        {"field": "last_order_at", "op": "older_than", "days": 180},
                        {
                            "performed": "order_placed",
                            "where": [{"field": "channel", "op": "eq", "value": "web"}],
                            "at_least": 1,
                            "within_days": 200,
                        },
                    ]
                },
            },
        )
        assert lapsed["recomputed"][0]["entered"] == 0
        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, lapsing)
            assert row is not None
            due = row.recheck_at
        assert due is not None
        now = datetime.now(UTC)
        assert now + timedelta(days=9) < due < now + timedelta(days=11)  # 180 - 170 days

        early = due - timedelta(minutes=1)
        await MembershipScheduler(app.state.database, now=lambda: early).run_once()
        assert await segment_events(app, lapsing) == []
        await MembershipScheduler(app.state.database, now=lambda: due).run_once()
        events = [(t, d["segment_id"]) for t, d in await segment_events(app, lapsing)]
        assert events == [("entered", lapsed["id"])]
        # … and leaves when the web order drops out of the 200-day window
        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, lapsing)
            assert row is not None
            leave = row.recheck_at
        assert leave is not None
        await MembershipScheduler(app.state.database, now=lambda: leave).run_once()
        events = [(t, d["segment_id"]) for t, d in await segment_events(app, lapsing)]
        assert events == [("entered", lapsed["id"]), ("exited", lapsed["id"])]


class TestEditRule:
    async def test_recomputes_at_the_new_version_and_publishes_only_the_differences(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        big = await customer(app, tag, "150.00")
        medium = await customer(app, tag, "60.00")
        created = await create(client, {"name": "Big", "rule": spent_at_least(tag, "100")})

        response = await client.patch(
            f"/segments/{created['id']}", json={"rule": spent_at_least(tag, "50")}, headers=WRITE
        )

        assert response.status_code == 200, response.text
        assert response.json()["version"] == 2
        assert response.json()["recomputed"] == [
            {"segment_id": created["id"], "version": 2, "entered": 1, "exited": 0}
        ]
        assert [t for t, _ in await segment_events(app, big)] == ["entered"]
        assert [(t, d["segment_version"]) for t, d in await segment_events(app, medium)] == [
            ("entered", 2)
        ]
        async with app.state.database.session() as session:
            versions = (
                await session.scalars(
                    select(SegmentMember.version).where(
                        SegmentMember.segment_id == uuid.UUID(created["id"])
                    )
                )
            ).all()
        assert sorted(versions) == [2, 2]

    async def test_refuses_a_member_of_cycle(self, client: httpx.AsyncClient) -> None:
        a = await create(
            client, {"name": "A", "rule": {"field": "order_count", "op": "gt", "value": 99}}
        )
        b = await create(client, {"name": "B", "rule": {"member_of": a["id"]}})

        response = await client.patch(
            f"/segments/{a['id']}", json={"rule": {"member_of": b["id"]}}, headers=WRITE
        )

        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert (error["pointer"], error["code"]) == ("/body/rule/member_of", "cycle")
        deleted = await client.delete(f"/segments/{a['id']}", headers=WRITE)
        assert deleted.status_code == 409
        assert deleted.json()["used_by"] == [b["id"]]


class TestEditDuringAnEvent:
    """An edit's recompute and an event's transaction touch the same customer at once: the
    edit waits for the event (no deadlock) and then reads what the event wrote."""

    async def test_the_edit_waits_for_the_event_and_reads_its_write(self, make_settings) -> None:  # type: ignore[no-untyped-def]
        app = create_app(make_settings(Settings, membership_scheduler_enabled=False))
        async with api_client(app, rollback=False) as client:
            tag = uuid.uuid4().hex
            someone = await customer(app, tag, "10.00")
            recent = [
                {"field": "tags", "op": "contains", "value": tag},
                {"field": "last_order_at", "op": "within_last", "days": 30},  # time-relative
            ]
            created = await create(client, {"name": "Recent buyers", "rule": {"all": recent}})
            assert created["recomputed"][0]["entered"] == 1
            # A shorter window (an earlier re-check for everyone) and consent.
            consented = {
                "all": [
                    recent[0],
                    {"field": "last_order_at", "op": "within_last", "days": 20},
                    {"field": "email_consent", "op": "eq", "value": True},
                ]
            }

            database = app.state.database
            async with database.session() as event:
                # An event's transaction: its feature write first, its evaluation (which
                # takes the segments' shared locks) at the end.
                await event.execute(
                    update(CustomerFeatures)
                    .where(CustomerFeatures.customer_id == someone)
                    .values(email_consent=True)
                )
                edit = asyncio.create_task(
                    client.patch(
                        f"/segments/{created['id']}", json={"rule": consented}, headers=WRITE
                    )
                )
                await until_a_backend_waits_for_a_lock(database)
                await reevaluate(event, [someone], None, datetime.now(UTC))
            response = await edit

            assert response.status_code == 200, response.text
            # The edit read the event's consent: still a member, now at version 2.
            assert response.json()["recomputed"] == [
                {"segment_id": created["id"], "version": 2, "entered": 0, "exited": 0}
            ]
            mine = await client.get(f"/customers/{someone}/segments", headers=READ)
            assert [(s["segment_id"], s["version"]) for s in mine.json()] == [(created["id"], 2)]


class TestPreview:
    async def test_counts_and_samples_without_saving(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        ids = sorted([await customer(app, tag, "120.00") for _ in range(3)], key=str)
        await customer(app, tag, "20.00")
        before = len((await client.get("/segments?limit=200", headers=READ)).json()["items"])

        response = await client.post(
            "/segments:preview",
            json={"rule": spent_at_least(tag, "100"), "sample_size": 2},
            headers=READ,
        )

        assert response.status_code == 200, response.text
        assert response.json() == {"count": 3, "sample": [str(i) for i in ids[:2]]}
        after = len((await client.get("/segments?limit=200", headers=READ)).json()["items"])
        assert after == before

    async def test_refuses_an_unknown_segment_with_a_pointer(
        self, client: httpx.AsyncClient
    ) -> None:
        unknown = uuid.uuid4()
        response = await client.post(
            "/segments:preview",
            json={"rule": {"not": {"member_of": str(unknown)}}},
            headers=READ,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/body/rule/not/member_of"
        assert response.json()["errors"][0]["code"] == "unknown-segment"


class TestStaticSegments:
    async def test_hand_picked_members_publish_and_drive_dependent_segments(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        first, second = await customer(app, tag), await customer(app, tag)
        static = await create(
            client, {"name": "Fair leads", "kind": "static", "customer_ids": [str(first)]}
        )
        dependent = await create(
            client,
            {
                "name": "Tagged fair leads",
                "rule": {
                    "all": [
                        {"member_of": static["id"]},
                        {"field": "tags", "op": "contains", "value": tag},
                    ]
                },
            },
        )
        assert dependent["recomputed"][0]["entered"] == 1

        response = await client.post(
            f"/segments/{static['id']}/members",
            json={"add": [str(second)], "remove": [str(first)]},
            headers=WRITE,
        )

        assert response.json() == {"added": 1, "removed": 1}
        first_events = [(t, d["segment_id"]) for t, d in await segment_events(app, first)]
        assert first_events == [
            ("entered", static["id"]),
            ("entered", dependent["id"]),
            ("exited", static["id"]),
            ("exited", dependent["id"]),
        ]
        second_events = [(t, d["segment_id"]) for t, d in await segment_events(app, second)]
        assert second_events == [("entered", static["id"]), ("entered", dependent["id"])]

    async def test_members_of_a_dynamic_segment_cannot_be_hand_picked(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create(
            client, {"name": "x", "rule": {"field": "order_count", "op": "gt", "value": 5}}
        )
        response = await client.post(
            f"/segments/{created['id']}/members", json={"add": [str(uuid.uuid4())]}, headers=WRITE
        )
        assert response.status_code == 409


class TestExport:
    async def test_streams_csv_and_ndjson(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        members = sorted([uuid.uuid4() for _ in range(3)], key=str)
        created = await create(
            client, {"name": "list", "kind": "static", "customer_ids": [str(m) for m in members]}
        )

        csv = await client.get(f"/segments/{created['id']}/export?format=csv", headers=READ)
        ndjson = await client.get(f"/segments/{created['id']}/export?format=ndjson", headers=READ)

        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0] == "customer_id,version,entered_at"
        assert [line.split(",")[0] for line in lines[1:]] == [str(m) for m in members]
        assert ndjson.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in ndjson.text.splitlines()]
        assert [r["customer_id"] for r in rows] == [str(m) for m in members]
        assert {r["version"] for r in rows} == {1}

    async def test_answers_404_for_an_unknown_segment(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/segments/{uuid.uuid4()}/export", headers=READ)
        assert response.status_code == 404


class TestErase:
    async def test_an_erased_customer_leaves_every_segment(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        tag = uuid.uuid4().hex
        someone = await customer(app, tag, "150.00")
        await create(client, {"name": "Big", "rule": spent_at_least(tag, "100")})

        await deliver(app, CustomerErased(customer_id=someone, erased_at=datetime.now(UTC)))

        mine = await client.get(f"/customers/{someone}/segments", headers=READ)
        assert mine.json() == []


class TestIdempotencyAndScope:
    async def test_a_retried_create_with_the_same_key_returns_the_first_answer(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {"name": "once", "kind": "static", "customer_ids": [str(uuid.uuid4())]}
        headers = {**WRITE, "Idempotency-Key": uuid.uuid4().hex}

        first = await client.post("/segments", json=body, headers=headers)
        again = await client.post("/segments", json=body, headers=headers)

        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        listed = await client.get("/segments?limit=200", headers=READ)
        assert [s["name"] for s in listed.json()["items"]].count("once") == 1

    async def test_members_are_limited_to_the_callers_data_scope(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        mine, theirs = sorted([uuid.uuid4(), uuid.uuid4()], key=str)
        async with app.state.database.session() as session:
            await session.execute(
                text(
                    "INSERT INTO segmentation.customer_scope (customer_id, owner_id) "
                    "VALUES (:a, 'agent-1'), (:b, 'agent-2')"
                ),
                {"a": mine, "b": theirs},
            )
        created = await create(
            client, {"name": "two", "kind": "static", "customer_ids": [str(mine), str(theirs)]}
        )
        own = bearer("segments:read", subject="agent-1", scope_mode="own")

        members = await client.get(f"/segments/{created['id']}/members", headers=own)
        got = await client.get(f"/segments/{created['id']}", headers=own)
        everyone = await client.get(f"/segments/{created['id']}", headers=READ)

        assert [m["customer_id"] for m in members.json()["items"]] == [str(mine)]
        assert got.json()["member_count"] == 1
        assert everyone.json()["member_count"] == 2
        assert (await client.get(f"/customers/{theirs}/segments", headers=own)).json() == []


class TestMerge:
    async def test_the_survivor_takes_the_duplicates_memberships_and_is_evaluated_again(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        from shared.events import CustomerMerged

        tag = uuid.uuid4().hex
        survivor = await customer(app, tag, "20.00")
        duplicate = await customer(app, tag, "90.00")
        big = await create(client, {"name": "Big", "rule": spent_at_least(tag, "100")})
        small = await create(client, {"name": "Small", "rule": spent_at_least(tag, "50")})
        static = await create(
            client, {"name": "list", "kind": "static", "customer_ids": [str(duplicate)]}
        )
        assert big["recomputed"][0]["entered"] == 0
        assert small["recomputed"][0]["entered"] == 1  # the duplicate

        await deliver(
            app,
            CustomerMerged(
                customer_id=survivor,
                merged_id=duplicate,
                merged_by="agent",
                merged_at=datetime.now(UTC),
            ),
        )

        mine = await client.get(f"/customers/{survivor}/segments", headers=READ)
        assert sorted(s["name"] for s in mine.json()) == ["Big", "Small", "list"]
        gone = await client.get(f"/customers/{duplicate}/segments", headers=READ)
        assert gone.json() == []
        # inherited memberships need no event (consumers fold the duplicate themselves);
        # the folded spend (110 EUR) newly qualifies the survivor for "Big"
        events = [(t, d["segment_id"]) for t, d in await segment_events(app, survivor)]
        assert events == [("entered", big["id"])]
        assert static["id"] not in {d for _, d in events}


class TestUploadMembers:
    async def test_adds_then_replaces_from_a_csv_file(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        a, b, c = (uuid.uuid4() for _ in range(3))
        created = await create(
            client, {"name": "upload", "kind": "static", "customer_ids": [str(a)]}
        )
        csv_headers = {**WRITE, "content-type": "text/csv"}

        added = await client.post(
            f"/segments/{created['id']}/members:upload",
            content=f"customer_id\n{a}\n\n{b},extra column\n",
            headers=csv_headers,
        )
        replaced = await client.post(
            f"/segments/{created['id']}/members:upload?mode=replace",
            content=f"{b}\n{c}\n",
            headers=csv_headers,
        )

        assert added.json() == {"added": 1, "removed": 0}
        assert replaced.json() == {"added": 1, "removed": 1}
        members = await client.get(f"/segments/{created['id']}/members", headers=READ)
        assert {m["customer_id"] for m in members.json()["items"]} == {str(b), str(c)}
        assert [t for t, _ in await segment_events(app, a)] == ["entered", "exited"]

    async def test_points_at_each_line_that_is_not_an_id_and_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create(client, {"name": "upload", "kind": "static"})

        response = await client.post(
            f"/segments/{created['id']}/members:upload",
            content=f"{uuid.uuid4()}\nnot-an-id\n{uuid.uuid4()}\n42\n",
            headers={**WRITE, "content-type": "text/csv"},
        )

        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == [
            "/body/line/2",
            "/body/line/4",
        ]
        got = await client.get(f"/segments/{created['id']}", headers=READ)
        assert got.json()["member_count"] == 0

    async def test_refuses_a_body_that_is_not_csv(self, client: httpx.AsyncClient) -> None:
        created = await create(client, {"name": "upload", "kind": "static"})
        response = await client.post(
            f"/segments/{created['id']}/members:upload", json=[], headers=WRITE
        )
        assert response.status_code == 415

    async def test_ten_thousand_hand_picked_members_in_one_call(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = [str(uuid.uuid4()) for _ in range(10_000)]
        created = await create(client, {"name": "big list", "kind": "static", "customer_ids": ids})
        assert created["recomputed"][0]["entered"] == 10_000
        got = await client.get(f"/segments/{created['id']}", headers=READ)
        assert got.json()["member_count"] == 10_000
