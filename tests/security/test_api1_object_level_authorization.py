"""OWASP API1:2023 — Broken Object Level Authorization.

A sales rep whose data scope is ``own`` (``scope_mode=own`` on a real gateway token) must not
read, list, change, delete or add to another rep's customer, nor that customer's
interactions, tickets, tasks, orders or deals — in any service. Each service applies the
principal's ``scope_mode`` inside its queries (``shared.privacy``); refusals are ``404``
(existence is not revealed). Every refusal is paired with the same request on the rep's own
customer, which succeeds, so the checks cannot pass by refusing everything.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from tests.security.conftest import PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Records:
    customer: str
    interaction: str
    ticket: str
    task: str
    order: str
    deal: str


@dataclass
class World:
    rep_a: str
    rep_b: str
    product: str
    a: Records
    b: Records


async def records_of(stack: Stack, customer: str, product: str) -> Records:
    admin = stack.auth("admin")
    c = stack.client
    due = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    made = {
        "interaction": await c.post(
            "/api/v1/interactions",
            json={"customer_id": customer, "channel": "email", "kind": "note", "summary": "hi"},
            headers=admin,
        ),
        "ticket": await c.post(
            "/api/v1/tickets",
            json={"customer_id": customer, "title": "Broken kettle", "category": "complaint"},
            headers=admin,
        ),
        "task": await c.post(
            "/api/v1/tasks",
            json={"customer_id": customer, "title": "Call back", "due_at": due},
            headers=admin,
        ),
        "order": await c.post(
            "/api/v1/orders",
            json={
                "customer_id": customer,
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": product, "quantity": 2}],
            },
            headers=admin,
        ),
        "deal": await c.post(
            "/api/v1/deals",
            json={
                "customer_id": customer,
                "title": "Renewal",
                "amount": "100.00",
                "currency": "EUR",
            },
            headers=admin,
        ),
    }
    for name, response in made.items():
        assert response.status_code == 201, (name, response.text)
    return Records(customer, **{name: r.json()["id"] for name, r in made.items()})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(stack: Stack) -> World:
    marker = uuid.uuid4().hex[:8]
    rep_a, rep_b = f"rep-a-{marker}", f"rep-b-{marker}"
    product = await stack.client.post(
        "/api/v1/products",
        json={"sku": f"SEC-{marker}", "name": "Kettle", "price": "20.00", "currency": "EUR"},
        headers=stack.auth("admin"),
    )
    assert product.status_code == 201, product.text
    product_id = product.json()["id"]
    stage = await stack.client.post(
        "/api/v1/pipeline/stages",
        json={
            "name": f"Qualify {marker}",
            "position": int(marker, 16) % 10_000,
            "probability": "0.2",
        },
        headers=stack.auth("admin"),
    )
    assert stage.status_code in (201, 409), stage.text  # deals need a pipeline
    a = await records_of(stack, await stack.customer(rep_a), product_id)
    b = await records_of(stack, await stack.customer(rep_b), product_id)
    return World(rep_a, rep_b, product_id, a, b)


def rep(stack: Stack, subject: str) -> dict[str, str]:
    return stack.auth("sales", subject, scope_mode="own")


def reads(r: Records) -> list[str]:
    return [
        f"/api/v1/customers/{r.customer}",
        f"/api/v1/customers/{r.customer}/360",
        f"/api/v1/customers/{r.customer}/timeline",
        f"/api/v1/customers/{r.customer}/audit",
        f"/api/v1/customers/{r.customer}/duplicates",
        f"/api/v1/customers/{r.customer}/features",
        f"/api/v1/customers/{r.customer}/scores",
        f"/api/v1/interactions/{r.interaction}",
        f"/api/v1/tickets/{r.ticket}",
        f"/api/v1/tickets/{r.ticket}/comments",
        f"/api/v1/tasks/{r.task}",
        f"/api/v1/orders/{r.order}",
        f"/api/v1/deals/{r.deal}",
        f"/api/v1/deals/{r.deal}/history",
    ]


class TestReads:
    async def test_the_rep_reads_every_record_of_its_own_customer(self, stack: Stack, world: World):
        headers = rep(stack, world.rep_a)
        for path in reads(world.a):
            response = await stack.client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
        customer = await stack.client.get(f"/api/v1/customers/{world.a.customer}", headers=headers)
        assert customer.json()["owner_id"] == world.rep_a

    async def test_another_reps_customer_and_records_are_404(self, stack: Stack, world: World):
        headers = rep(stack, world.rep_a)
        leaked = {}
        for path in reads(world.b):
            response = await stack.client.get(path, headers=headers)
            if response.status_code != 404:
                leaked[path] = response.status_code
            else:
                assert response.headers["content-type"] == PROBLEM
        assert leaked == {}

    async def test_the_other_rep_sees_its_customer_so_the_404s_are_about_scope(
        self, stack: Stack, world: World
    ):
        headers = rep(stack, world.rep_b)
        for path in reads(world.b):
            response = await stack.client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)

    async def test_a_sales_token_without_a_team_claim_falls_back_to_own(
        self, stack: Stack, world: World
    ):
        headers = stack.auth("sales", world.rep_a)  # sales defaults to team; no team → own
        mine = await stack.client.get(f"/api/v1/customers/{world.a.customer}", headers=headers)
        theirs = await stack.client.get(f"/api/v1/customers/{world.b.customer}", headers=headers)
        assert (mine.status_code, theirs.status_code) == (200, 404)

    async def test_lists_hold_only_the_reps_own_records(self, stack: Stack, world: World):
        headers = rep(stack, world.rep_a)
        lists = {
            "/api/v1/customers": ("id", "customer"),
            "/api/v1/interactions": ("id", "interaction"),
            "/api/v1/tickets": ("id", "ticket"),
            "/api/v1/tasks": ("id", "task"),
            "/api/v1/orders": ("id", "order"),
            "/api/v1/deals": ("id", "deal"),
        }
        for path, (key, kind) in lists.items():
            response = await stack.client.get(path, params={"limit": 200}, headers=headers)
            assert response.status_code == 200, (path, response.text)
            ids = {item[key] for item in response.json()["items"]}
            assert getattr(world.a, kind) in ids, path
            assert getattr(world.b, kind) not in ids, path
            owners = {i.get("customer_id", i["id"]) for i in response.json()["items"]}
            assert owners == {world.a.customer}, path
        for path in ("/api/v1/interactions", "/api/v1/orders", "/api/v1/tickets", "/api/v1/tasks"):
            filtered = await stack.client.get(
                path, params={"customer_id": world.b.customer}, headers=headers
            )
            assert filtered.status_code == 200, (path, filtered.text)
            assert filtered.json()["items"] == [], path

    async def test_search_and_resolve_do_not_reveal_another_reps_customer(
        self, stack: Stack, world: World
    ):
        headers = rep(stack, world.rep_a)
        found = await stack.client.get(
            "/api/v1/customers:search", params={"q": f"Person of {world.rep_b}"}, headers=headers
        )
        assert found.status_code == 200, found.text
        hits = {i["customer"]["id"] for i in found.json()["items"]}
        assert world.b.customer not in hits
        assert hits <= {world.a.customer}  # a fuzzy hit on the rep's own customer is fine
        control = await stack.client.get(
            "/api/v1/customers:search", params={"q": f"Person of {world.rep_a}"}, headers=headers
        )
        assert [i["customer"]["id"] for i in control.json()["items"]] == [world.a.customer]

    async def test_segment_memberships_of_another_reps_customer_are_not_shown(
        self, stack: Stack, world: World
    ):
        segment = await stack.client.post(
            "/api/v1/segments",
            json={
                "name": f"Both reps {uuid.uuid4().hex[:6]}",
                "kind": "static",
                "customer_ids": [world.a.customer, world.b.customer],
            },
            headers=stack.auth("admin"),
        )
        assert segment.status_code == 201, segment.text
        segment_id = segment.json()["id"]
        headers = rep(stack, world.rep_a)
        mine = await stack.client.get(
            f"/api/v1/customers/{world.a.customer}/segments", headers=headers
        )
        theirs = await stack.client.get(
            f"/api/v1/customers/{world.b.customer}/segments", headers=headers
        )
        assert segment_id in [s["segment_id"] for s in mine.json()]
        assert theirs.status_code == 200
        assert theirs.json() == []  # documented: outside the scope reads as "in no segment"
        members = await stack.client.get(
            f"/api/v1/segments/{segment_id}/members", params={"limit": 200}, headers=headers
        )
        assert members.status_code == 200, members.text
        assert {m["customer_id"] for m in members.json()["items"]} == {world.a.customer}


def changes(r: Records, product: str) -> list[tuple[str, str, dict[str, object] | None]]:
    due = (datetime.now(UTC) + timedelta(days=9)).isoformat()
    return [
        ("PATCH", f"/api/v1/customers/{r.customer}", {"display_name": "Taken over"}),
        ("PATCH", f"/api/v1/tickets/{r.ticket}", {"priority": "urgent"}),
        ("POST", f"/api/v1/tickets/{r.ticket}/comments", {"body": "mine now"}),
        ("POST", f"/api/v1/tickets/{r.ticket}:transition", {"to": "pending"}),
        ("PATCH", f"/api/v1/tasks/{r.task}", {"due_at": due}),
        ("POST", f"/api/v1/tasks/{r.task}:complete", None),
        ("POST", f"/api/v1/orders/{r.order}/payments", {"amount": "1.00", "method": "card"}),
        ("POST", f"/api/v1/orders/{r.order}/status", {"status": "cancelled"}),
        ("PATCH", f"/api/v1/deals/{r.deal}", {"title": "Mine"}),
        ("POST", f"/api/v1/deals/{r.deal}/lost", {"reason": "moved"}),
    ]


def adds(r: Records, product: str) -> list[tuple[str, dict[str, object]]]:
    due = (datetime.now(UTC) + timedelta(days=9)).isoformat()
    c = r.customer
    return [
        ("/api/v1/interactions", {"customer_id": c, "channel": "call", "kind": "call"}),
        ("/api/v1/tickets", {"customer_id": c, "title": "Side door", "category": "question"}),
        ("/api/v1/tasks", {"customer_id": c, "title": "Poach", "due_at": due}),
        ("/api/v1/surveys/responses", {"customer_id": c, "survey": "csat", "score": 5}),
        (
            "/api/v1/orders",
            {
                "customer_id": c,
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": product, "quantity": 1}],
            },
        ),
        ("/api/v1/deals", {"customer_id": c, "title": "Poached", "amount": "5", "currency": "EUR"}),
    ]


class TestWrites:
    async def test_changes_to_another_reps_records_are_404_and_change_nothing(
        self, stack: Stack, world: World
    ):
        admin = stack.auth("admin")
        before = {
            path: (await stack.client.get(path, headers=admin)).json()
            for path in reads(world.b)[:1] + reads(world.b)[8:14:2]
        }
        headers = rep(stack, world.rep_a)
        allowed = {}
        for method, path, body in changes(world.b, world.product):
            response = await stack.client.request(method, path, json=body, headers=headers)
            if response.status_code != 404:
                allowed[f"{method} {path}"] = (response.status_code, response.text[:200])
        assert allowed == {}
        for method, path in (
            ("DELETE", f"/api/v1/customers/{world.b.customer}"),
            ("DELETE", f"/api/v1/tasks/{world.b.task}"),
        ):
            response = await stack.client.request(method, path, headers=headers)
            assert response.status_code == 404, (method, path, response.text)
        after = {path: (await stack.client.get(path, headers=admin)).json() for path in before}
        assert after == before

    async def test_the_same_changes_to_the_reps_own_records_succeed(
        self, stack: Stack, world: World
    ):
        headers = rep(stack, world.rep_a)
        for method, path, body in changes(world.a, world.product):
            response = await stack.client.request(method, path, json=body, headers=headers)
            assert response.status_code in (200, 201), (method, path, response.text)

    async def test_merging_another_reps_customer_into_ones_own_is_refused(
        self, stack: Stack, world: World
    ):
        headers = rep(stack, world.rep_a)
        response = await stack.client.post(
            f"/api/v1/customers/{world.a.customer}:merge",
            json={"merged_ids": [world.b.customer]},
            headers=headers,
        )
        assert response.status_code in (404, 422), response.text
        still = await stack.client.get(
            f"/api/v1/customers/{world.b.customer}", headers=stack.auth("admin")
        )
        assert still.json()["status"] == "active"

    async def test_records_cannot_be_added_to_another_reps_customer(
        self, stack: Stack, world: World
    ):
        headers = rep(stack, world.rep_a)
        accepted = {}
        for path, body in adds(world.b, world.product):
            response = await stack.client.post(path, json=body, headers=headers)
            if response.status_code != 404:
                accepted[path] = (response.status_code, response.text[:200])
        assert accepted == {}

    async def test_records_can_be_added_to_the_reps_own_customer(self, stack: Stack, world: World):
        headers = rep(stack, world.rep_a)
        for path, body in adds(world.a, world.product):
            response = await stack.client.post(path, json=body, headers=headers)
            assert response.status_code == 201, (path, response.text)

    async def test_a_batch_cannot_attach_interactions_to_another_reps_customer(
        self, stack: Stack, world: World
    ):
        events = [
            {
                "customer_id": world.a.customer,
                "channel": "web",
                "kind": "page_view",
                "metadata": {"url": "https://shop.example/a"},
            },
            {
                "customer_id": world.b.customer,
                "channel": "web",
                "kind": "page_view",
                "metadata": {"url": "https://shop.example/b"},
            },
        ]
        response = await stack.client.post(
            "/api/v1/interactions:batch",
            json={"source": "web-tracker", "events": events},
            headers=rep(stack, world.rep_a),
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["stored", "error"]
        assert results[1]["problem"]["type"] == "/problems/unknown-customer"


class TestImports:
    async def run_import(self, stack: Stack, headers: dict[str, str], csv: str) -> dict[str, Any]:
        started = await stack.client.post(
            "/api/v1/imports/customers",
            content=csv.encode(),
            headers={**headers, "Content-Type": "text/csv"},
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        for _ in range(200):
            job = await stack.client.get(f"/api/v1/imports/{job_id}", headers=headers)
            assert job.status_code == 200, job.text
            if job.json()["status"] in ("done", "failed"):
                result: dict[str, Any] = job.json()
                return result
            await asyncio.sleep(0.05)
        raise AssertionError("the import did not finish")

    async def test_an_import_cannot_update_or_take_over_another_reps_customer(self, stack: Stack):
        marker = uuid.uuid4().hex[:8]
        rep_a, rep_b = f"imp-a-{marker}", f"imp-b-{marker}"
        mine_email, theirs_email = f"a.{marker}@example.com", f"b.{marker}@example.com"
        mine = await stack.customer(rep_a, emails=[mine_email])
        theirs = await stack.customer(rep_b, emails=[theirs_email])
        csv = (
            "display_name,email,owner_id,tags\n"
            f"Mine {marker},{mine_email},,seen\n"
            f"Taken {marker},{theirs_email},{rep_a},stolen\n"
        )
        job = await self.run_import(stack, rep(stack, rep_a), csv)
        assert job["status"] == "done", job
        assert (job["updated"], job["failed"]) == (1, 1)
        admin = stack.auth("admin")
        after = (await stack.client.get(f"/api/v1/customers/{theirs}", headers=admin)).json()
        assert after["owner_id"] == rep_b
        assert after["display_name"] == f"Person of {rep_b}"
        assert "stolen" not in after["tags"]
        updated = (await stack.client.get(f"/api/v1/customers/{mine}", headers=admin)).json()
        assert updated["display_name"] == f"Mine {marker}"
        assert "seen" in updated["tags"]
        errors = await stack.client.get(
            f"/api/v1/imports/{job['id']}/errors", headers=rep(stack, rep_a)
        )
        assert [e["row_number"] for e in errors.json()["items"]] == [2]
