"""OWASP API6:2023 — Unrestricted Access to Sensitive Business Flows.

Rapport has no purchase or sign-up flow open to the public (every caller is an
authenticated staff member or partner, rate-limited per principal — see API4), so the
flows worth protecting are the ones a retrying or malicious client could repeat for gain or
damage:

* **creates with an ``Idempotency-Key``** (customers, orders, tickets, tasks, survey answers,
  deals, segments): a repeat — sequential or concurrent — returns the first answer and writes
  nothing; the same key with another body is refused (``422``); keys are per principal, so
  another caller's key never returns someone else's record;
* **money**: a refund cannot exceed what was paid, and an order cannot be paid beyond its
  total, so a repeated payment/refund call cannot move more money than the order holds;
* **state transitions** cannot be repeated for effect (a task completes once).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from tests.security.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(stack: Stack) -> dict[str, str]:
    marker = uuid.uuid4().hex[:8]
    product = await stack.client.post(
        "/api/v1/products",
        json={"sku": f"API6-{marker}", "name": "Tea", "price": "10.00", "currency": "EUR"},
        headers=stack.auth(),
    )
    assert product.status_code == 201, product.text
    stage = await stack.client.post(
        "/api/v1/pipeline/stages",
        json={"name": f"Lead {marker}", "position": int(marker, 16) % 10_000, "probability": "0.1"},
        headers=stack.auth(),
    )
    assert stage.status_code in (201, 409), stage.text
    return {"customer": await stack.customer(f"owner-{marker}"), "product": product.json()["id"]}


def creates(shop: dict[str, str]) -> dict[str, dict[str, Any]]:
    customer = shop["customer"]
    due = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    return {
        "/api/v1/customers": {"display_name": f"Idem {uuid.uuid4().hex[:6]}"},
        "/api/v1/orders": {
            "customer_id": customer,
            "currency": "EUR",
            "channel": "online_store",
            "lines": [{"product_id": shop["product"], "quantity": 1}],
        },
        "/api/v1/tickets": {"customer_id": customer, "title": "Late", "category": "complaint"},
        "/api/v1/tasks": {"customer_id": customer, "title": "Call", "due_at": due},
        "/api/v1/surveys/responses": {"customer_id": customer, "survey": "nps", "score": 9},
        "/api/v1/deals": {
            "customer_id": customer,
            "title": "Upsell",
            "amount": "50.00",
            "currency": "EUR",
        },
        "/api/v1/segments": {
            "name": f"Idem {uuid.uuid4().hex[:6]}",
            "kind": "static",
            "customer_ids": [customer],
        },
    }


PATHS = list(creates({"customer": "x", "product": "y"}))


class TestIdempotentCreates:
    @pytest.mark.parametrize("path", PATHS)
    async def test_a_repeat_returns_the_first_answer_and_writes_nothing(
        self, stack: Stack, shop: dict[str, str], path: str
    ):
        body = creates(shop)[path]
        headers = {**stack.auth("admin", "idem-admin"), "Idempotency-Key": uuid.uuid4().hex}
        first = await stack.client.post(path, json=body, headers=headers)
        again = await stack.client.post(path, json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert again.status_code == 201, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.headers.get("idempotent-replayed") == "true"

    @pytest.mark.parametrize("path", PATHS)
    async def test_the_same_key_with_another_body_is_refused(
        self, stack: Stack, shop: dict[str, str], path: str
    ):
        body = creates(shop)[path]
        headers = {**stack.auth("admin", "idem-admin"), "Idempotency-Key": uuid.uuid4().hex}
        first = await stack.client.post(path, json=body, headers=headers)
        assert first.status_code == 201, first.text
        other = await stack.client.post(path, json={**body, **_changes(body)}, headers=headers)
        assert other.status_code == 422, other.text

    @pytest.mark.parametrize("path", PATHS)
    async def test_another_principals_key_never_returns_someone_elses_record(
        self, stack: Stack, shop: dict[str, str], path: str
    ):
        body = creates(shop)[path]
        key = uuid.uuid4().hex
        mine = await stack.client.post(
            path, json=body, headers={**stack.auth("admin", "idem-a"), "Idempotency-Key": key}
        )
        theirs = await stack.client.post(
            path, json=body, headers={**stack.auth("admin", "idem-b"), "Idempotency-Key": key}
        )
        assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
        assert theirs.json()["id"] != mine.json()["id"]
        assert "idempotent-replayed" not in theirs.headers

    async def test_concurrent_repeats_create_one_order(self, stack: Stack, shop: dict[str, str]):
        body = creates(shop)["/api/v1/orders"]
        headers = {**stack.auth("admin", "idem-admin"), "Idempotency-Key": uuid.uuid4().hex}
        answers = await asyncio.gather(
            *(stack.client.post("/api/v1/orders", json=body, headers=headers) for _ in range(5))
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    for name in ("display_name", "title", "name"):
        if name in body:
            return {name: body[name] + " (changed)"}
    if "score" in body:
        return {"score": 3}
    return {"channel": "pos"}


class TestMoney:
    async def test_refunds_and_payments_are_bounded_by_the_order(
        self, stack: Stack, shop: dict[str, str]
    ):
        admin = stack.auth()
        order = await stack.client.post(
            "/api/v1/orders", json=creates(shop)["/api/v1/orders"], headers=admin
        )
        assert order.status_code == 201, order.text
        base = f"/api/v1/orders/{order.json()['id']}"
        total = order.json()["total"]
        over_refund = await stack.client.post(
            f"{base}/refunds", json={"amount": "1.00"}, headers=admin
        )
        assert over_refund.status_code in (409, 422), over_refund.text
        paid = await stack.client.post(
            f"{base}/payments", json={"amount": total, "method": "card"}, headers=admin
        )
        assert paid.status_code == 201, paid.text
        over_pay = await stack.client.post(
            f"{base}/payments", json={"amount": "0.01", "method": "card"}, headers=admin
        )
        assert over_pay.status_code in (409, 422), over_pay.text
        refunded = await stack.client.post(f"{base}/refunds", json={"amount": total}, headers=admin)
        assert refunded.status_code == 201, refunded.text
        again = await stack.client.post(f"{base}/refunds", json={"amount": "0.01"}, headers=admin)
        assert again.status_code in (409, 422), again.text
        final = (await stack.client.get(base, headers=admin)).json()
        assert (final["paid_total"], final["refunded_total"]) == (total, total)


class TestTransitions:
    async def test_a_task_completes_once(self, stack: Stack, shop: dict[str, str]):
        admin = stack.auth()
        task = await stack.client.post(
            "/api/v1/tasks", json=creates(shop)["/api/v1/tasks"], headers=admin
        )
        path = f"/api/v1/tasks/{task.json()['id']}:complete"
        first = await stack.client.post(path, headers=admin)
        second = await stack.client.post(path, headers=admin)
        assert (first.status_code, second.status_code) == (200, 409), second.text
