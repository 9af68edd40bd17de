"""OWASP API3:2023 — Broken Object Property Level Authorization.

Two halves:

* **Excessive data exposure.** Responses never carry secrets after the moment they are
  issued (API keys, webhook signing secrets), never their stored forms (hashes,
  ciphertext), and personal fields are masked for roles without ``customers:pii``.
* **Mass assignment.** Request models forbid unknown fields: a body that tries to set a
  server-owned property (``id``, ``status``, ``version``, ``created_at``, an order's totals, a
  task's customer, an endpoint's owner…) is a ``422`` problem and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.security.conftest import PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

STORED_FORMS = {"secret_hash", "hash", "ciphertext", "password", "password_hash", "key_hash"}


def keys_of(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in keys_of(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_of(v)}
    return set()


class TestExposure:
    async def test_an_api_key_is_shown_once_and_never_listed_or_stored_in_clear(self, stack: Stack):
        admin = stack.auth("admin")
        created = await stack.client.post(
            "/api/v1/admin/api-keys",
            json={"name": f"exposure {uuid.uuid4().hex[:6]}", "role": "analyst"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert key.startswith(created.json()["prefix"])
        one = await stack.client.get(
            f"/api/v1/admin/api-keys/{created.json()['id']}", headers=admin
        )
        listed = await stack.client.get(
            "/api/v1/admin/api-keys", params={"limit": 200}, headers=admin
        )
        for response in (one, listed):
            assert response.status_code == 200
            secret_part = key.rsplit("_", 1)[-1]
            assert secret_part not in response.text
            assert not keys_of(response.json()) & (STORED_FORMS | {"key"})
        assert set(one.json()) == set(created.json()) - {"key"}

    async def test_a_webhook_signing_secret_is_shown_once(self, stack: Stack):
        admin = stack.auth("admin")
        created = await stack.client.post(
            "/api/v1/webhook-endpoints",
            json={"url": "https://93.184.216.34/hooks", "event_types": ["rapport.order.*"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]["secret"]
        assert secret.startswith("whsec_")
        endpoint = created.json()["id"]
        try:
            one = await stack.client.get(f"/api/v1/webhook-endpoints/{endpoint}", headers=admin)
            listed = await stack.client.get("/api/v1/webhook-endpoints", headers=admin)
            for response in (one, listed):
                assert response.status_code == 200, response.text
                assert secret not in response.text
                assert secret.removeprefix("whsec_") not in response.text
                assert not keys_of(response.json()) & (STORED_FORMS | {"secret"})
        finally:
            await stack.client.delete(f"/api/v1/webhook-endpoints/{endpoint}", headers=admin)

    async def test_webhook_source_secrets_are_not_listed(self, stack: Stack):
        admin = stack.auth("admin")
        name = f"shop{uuid.uuid4().hex[:8]}"
        created = await stack.client.post(
            "/api/v1/admin/webhook-sources", json={"name": name}, headers=admin
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]["secret"]
        listed = await stack.client.get("/api/v1/admin/webhook-sources", headers=admin)
        assert name in listed.text
        assert secret not in listed.text
        assert secret.removeprefix("whsec_") not in listed.text

    async def test_personal_fields_are_masked_without_the_pii_scope(self, stack: Stack):
        marker = uuid.uuid4().hex[:8]
        email, phone = f"mei.{marker}@example.com", f"+86139{int(marker, 16) % 10**8:08d}"
        customer = await stack.customer("owner-x", emails=[email], phones=[phone])
        # the control: an admin (customers:pii) reads it in clear
        full = await stack.client.get(f"/api/v1/customers/{customer}", headers=stack.auth())
        assert full.json()["emails"] == [email]
        for role in ("marketing", "analyst"):
            headers = stack.auth(role)
            for path in (
                f"/api/v1/customers/{customer}",
                f"/api/v1/customers/{customer}/360",
                f"/api/v1/customers/{customer}/export",
            ):
                response = await stack.client.get(path, headers=headers)
                if response.status_code == 403:
                    continue  # export needs more than reading
                assert response.status_code == 200, (role, path, response.text)
                assert email not in response.text, (role, path)
                assert phone not in response.text, (role, path)
            masked = (
                await stack.client.get(f"/api/v1/customers/{customer}", headers=headers)
            ).json()
            assert masked["emails"] == ["m***@example.com"]
            assert masked["phones"][0].endswith(phone[-4:])
            assert masked["phones"][0] != phone

    async def test_the_internal_token_never_comes_back_to_the_caller(self, stack: Stack):
        response = await stack.client.get("/api/v1/customers", headers=stack.auth())
        assert response.status_code == 200
        headers = " ".join(f"{k}: {v}" for k, v in response.headers.items()).lower()
        assert "bearer" not in headers
        assert "authorization" not in {k.lower() for k in response.headers}


async def refused(stack: Stack, method: str, path: str, body: dict[str, Any], field: str) -> None:
    response = await stack.client.request(method, path, json=body, headers=stack.auth())
    assert response.status_code == 422, (method, path, field, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert field in response.text, (path, field, response.text)


class TestMassAssignment:
    async def test_a_customer_cannot_be_created_with_server_owned_fields(self, stack: Stack):
        name = f"Mass {uuid.uuid4().hex[:8]}"
        forced = {
            "id": str(uuid.uuid4()),
            "status": "erased",
            "version": 99,
            "created_at": "2001-01-01T00:00:00Z",
            "merged_into": str(uuid.uuid4()),
        }
        for field, value in forced.items():
            await refused(
                stack, "POST", "/api/v1/customers", {"display_name": name, field: value}, field
            )
        found = await stack.client.get(
            "/api/v1/customers:search", params={"q": name}, headers=stack.auth()
        )
        assert [h for h in found.json()["items"] if h["customer"]["display_name"] == name] == []

    async def test_patches_cannot_set_server_owned_fields(self, stack: Stack):
        customer = await stack.customer("owner-mass")
        before = (
            await stack.client.get(f"/api/v1/customers/{customer}", headers=stack.auth())
        ).json()
        for field, value in {"status": "erased", "id": str(uuid.uuid4()), "version": 1}.items():
            await refused(stack, "PATCH", f"/api/v1/customers/{customer}", {field: value}, field)
        after = (
            await stack.client.get(f"/api/v1/customers/{customer}", headers=stack.auth())
        ).json()
        assert after == before

        due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        task = await stack.client.post(
            "/api/v1/tasks",
            json={"customer_id": customer, "title": "t", "due_at": due},
            headers=stack.auth(),
        )
        ticket = await stack.client.post(
            "/api/v1/tickets",
            json={"customer_id": customer, "title": "t", "category": "question"},
            headers=stack.auth(),
        )
        assert task.status_code == ticket.status_code == 201
        other = str(uuid.uuid4())
        for field, value in {"customer_id": other, "status": "done", "created_by": "x"}.items():
            await refused(
                stack, "PATCH", f"/api/v1/tasks/{task.json()['id']}", {field: value}, field
            )
        for field, value in {"customer_id": other, "status": "closed", "resolved_at": due}.items():
            await refused(
                stack, "PATCH", f"/api/v1/tickets/{ticket.json()['id']}", {field: value}, field
            )
        again = await stack.client.get(
            f"/api/v1/tickets/{ticket.json()['id']}", headers=stack.auth()
        )
        assert again.json()["status"] == ticket.json()["status"]
        assert again.json()["customer_id"] == customer

    async def test_an_order_cannot_bring_its_own_totals_or_status(self, stack: Stack):
        customer = await stack.customer("owner-order")
        base = {"customer_id": customer, "currency": "EUR", "channel": "online_store", "lines": []}
        for field, value in {"status": "paid", "total": "0.01", "paid_total": "100.00"}.items():
            await refused(stack, "POST", "/api/v1/orders", {**base, field: value}, field)

    async def test_a_deal_patch_cannot_move_it_to_another_customer_or_stage(self, stack: Stack):
        for field, value in {
            "customer_id": str(uuid.uuid4()),
            "stage_id": str(uuid.uuid4()),
            "status": "won",
        }.items():
            await refused(stack, "PATCH", f"/api/v1/deals/{uuid.uuid4()}", {field: value}, field)

    async def test_webhook_endpoints_and_api_keys_refuse_owner_and_stored_fields(
        self, stack: Stack
    ):
        body = {"url": "https://93.184.216.34/x", "event_types": ["rapport.order.*"]}
        for field, value in {
            "owner": "someone-else",
            "secret": "whsec_x",
            "id": str(uuid.uuid4()),
        }.items():
            await refused(stack, "POST", "/api/v1/webhook-endpoints", {**body, field: value}, field)
        key: dict[str, Any] = {"name": "k", "role": "partner"}
        forced: dict[str, Any] = {"key_id": "abc", "created_by": "x", "revoked_at": None}
        for field, value in forced.items():
            await refused(stack, "POST", "/api/v1/admin/api-keys", {**key, field: value}, field)
        await refused(
            stack, "POST", "/api/v1/admin/api-keys", {**key, "scopes": ["admin"]}, "admin"
        )
