"""The webhook front door: signed, stored before 202, deduplicated, published, replayable."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from gateway.main import create_app
from gateway.webhooks.handlers import on_customer_erased, on_webhook_processed
from shared.events import CustomerErased, Envelope, Event, WebhookProcessed, webhook_key
from shared.standard_webhooks import sign
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(
    loop_scope="session", params=[True, False], ids=["fast-path", "fastapi-route"]
)
async def settings(make_settings, request):
    """Every case twice: served by the pure-ASGI front door and by the FastAPI route."""
    return make_settings(Settings, webhook_fast_path=request.param)


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings):
    return create_app(settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def admin(settings):
    return {"Authorization": f"Bearer {mint_dev_token(settings, role='admin')}"}


@pytest_asyncio.fixture(loop_scope="session")
async def source(client, admin):
    name = f"shop-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        "/api/v1/admin/webhook-sources", json={"name": name}, headers=admin
    )
    assert response.status_code == 201, response.text
    return response.json()


def signed(secret: str, body: bytes, *, msg_id: str | None = None, at: int | None = None):
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


async def outbox_rows(app, key: uuid.UUID) -> list[Any]:
    async with app.state.database.session() as session:
        result = await session.execute(
            text("SELECT headers, payload FROM gateway.outbox WHERE key = :k ORDER BY id"),
            {"k": str(key)},
        )
        return list(result.all())


class TestReceiveWebhook:
    async def test_stores_the_raw_body_and_queues_it_for_the_services(self, client, app, source):
        body = b'{"order": {"id": 42, "total": "19.90"}}'
        headers = signed(source["secret"]["secret"], body)
        response = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert response.status_code == 202
        assert response.json()["status"] == "accepted"
        rows = await outbox_rows(app, webhook_key(source["name"], headers["webhook-id"]))
        assert len(rows) == 1
        assert dict(rows[0].headers)["ce_type"] == "rapport.webhook.received.v1"
        event = json.loads(rows[0].payload)
        assert event["body"] == body.decode()
        assert event["webhook_id"] == headers["webhook-id"]
        assert event["headers"]["webhook-id"] == headers["webhook-id"]
        receipt_id = response.json()["receipt_id"]
        admin_token = {
            "Authorization": f"Bearer {mint_dev_token(app.state.settings, role='admin')}"
        }
        stored = (
            await client.get(f"/api/v1/admin/webhook-receipts/{receipt_id}", headers=admin_token)
        ).json()
        assert stored["body"] == body.decode()
        assert stored["status"] == "published"

    async def test_a_repeated_webhook_id_is_accepted_and_ignored(self, client, app, source):
        body = b'{"n": 1}'
        headers = signed(source["secret"]["secret"], body)
        first = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        again = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json() == {"status": "duplicate", "receipt_id": first.json()["receipt_id"]}
        assert len(await outbox_rows(app, webhook_key(source["name"], headers["webhook-id"]))) == 1

    async def test_answers_exactly_alike_on_both_paths(self, client, source):
        body = b'{"same": "answer"}'
        headers = signed(source["secret"]["secret"], body) | {"x-request-id": "req-1"}
        first = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        receipt_id = first.json()["receipt_id"]
        expected = f'{{"status":"accepted","receipt_id":"{receipt_id}"}}'.encode()
        assert (first.status_code, first.content) == (202, expected)
        assert first.headers["content-type"] == "application/json"
        assert first.headers["content-length"] == str(len(expected))
        assert first.headers["x-request-id"] == "req-1"
        again = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert (again.status_code, again.content) == (
            200,
            expected.replace(b"accepted", b"duplicate"),
        )
        refused = await client.post(f"/webhooks/{source['name']}", content=b"{}", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json() == {
            "type": "/problems/unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": refused.json()["detail"],
            "instance": f"/webhooks/{source['name']}",
            "request_id": "req-1",
        }

    async def test_the_openapi_document_describes_the_operation(self, app):
        operation = app.openapi()["paths"]["/webhooks/{source}"]["post"]
        assert set(operation["responses"]) == {
            "200",
            "202",
            "400",
            "401",
            "404",
            "413",
            "422",
            "500",
            "503",
        }
        assert operation["parameters"][0]["schema"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
        assert operation["requestBody"]["required"] is True

    async def test_a_source_name_outside_the_pattern_is_422(self, client):
        response = await client.post("/webhooks/Not_A_Name", content=b"{}")
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/path/source"

    async def test_other_methods_are_405(self, client, source):
        response = await client.get(f"/webhooks/{source['name']}")
        assert response.status_code == 405

    async def test_refuses_a_tampered_body(self, client, source):
        headers = signed(source["secret"]["secret"], b'{"total": "1.00"}')
        response = await client.post(
            f"/webhooks/{source['name']}", content=b'{"total": "9.99"}', headers=headers
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    async def test_refuses_a_signature_made_with_another_secret(self, client, source):
        body = b"{}"
        headers = signed("whsec_" + base64.b64encode(b"another secret!!").decode(), body)
        response = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert response.status_code == 401

    async def test_refuses_a_stale_timestamp(self, client, source):
        body = b"{}"
        headers = signed(source["secret"]["secret"], body, at=int(time.time()) - 600)
        response = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert response.status_code == 401
        assert "timestamp" in response.json()["detail"]

    async def test_answers_missing_signature_headers_with_400(self, client, source):
        response = await client.post(f"/webhooks/{source['name']}", content=b"{}")
        assert response.status_code == 400
        assert response.json()["errors"][0]["pointer"] == "/headers/webhook-id"

    async def test_answers_an_unknown_source_with_404(self, client):
        response = await client.post(
            "/webhooks/nobody",
            content=b"{}",
            headers=signed("whsec_" + base64.b64encode(b"x" * 24).decode(), b"{}"),
        )
        assert response.status_code == 404

    async def test_keeps_a_binary_body_exactly(self, client, app, source):
        body = bytes(range(256))
        headers = signed(source["secret"]["secret"], body) | {
            "content-type": "application/octet-stream"
        }
        response = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert response.status_code == 202
        (row,) = await outbox_rows(app, webhook_key(source["name"], headers["webhook-id"]))
        event = json.loads(row.payload)
        assert event["body_encoding"] == "base64"
        assert base64.b64decode(event["body"]) == body


class TestRotateSecret:
    async def test_old_and_new_secrets_both_work_during_the_overlap(self, client, source, admin):
        old = source["secret"]["secret"]
        rotated = await client.post(
            f"/api/v1/admin/webhook-sources/{source['name']}/secrets",
            json={"overlap_s": 3600},
            headers=admin,
        )
        assert rotated.status_code == 201
        new = rotated.json()["secret"]
        assert new != old
        for secret in (old, new):
            body = b"{}"
            response = await client.post(
                f"/webhooks/{source['name']}", content=body, headers=signed(secret, body)
            )
            assert response.status_code == 202, secret

    async def test_without_overlap_the_old_secret_stops_working(self, client, source, admin):
        old = source["secret"]["secret"]
        rotated = await client.post(
            f"/api/v1/admin/webhook-sources/{source['name']}/secrets",
            json={"overlap_s": 0},
            headers=admin,
        )
        new = rotated.json()["secret"]
        body = b"{}"
        stale = await client.post(
            f"/webhooks/{source['name']}", content=body, headers=signed(old, body)
        )
        fresh = await client.post(
            f"/webhooks/{source['name']}", content=body, headers=signed(new, body)
        )
        assert (stale.status_code, fresh.status_code) == (401, 202)

    async def test_needs_the_webhooks_write_scope(self, client, source, settings):
        analyst = {"Authorization": f"Bearer {mint_dev_token(settings, role='analyst')}"}
        response = await client.post(
            f"/api/v1/admin/webhook-sources/{source['name']}/secrets", json={}, headers=analyst
        )
        assert response.status_code == 403


class TestDeliveryLog:
    async def test_shows_what_the_consuming_service_reported(self, client, app, source, admin):
        body = b'{"x": 1}'
        headers = signed(source["secret"]["secret"], body)
        await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        event = WebhookProcessed(
            customer_id=webhook_key(source["name"], headers["webhook-id"]),
            source=source["name"],
            webhook_id=headers["webhook-id"],
            status="failed",
            detail="unknown order id 42",
            processed_by="orders",
            processed_at=datetime.now(UTC),
        )
        async with app.state.database.session() as session:
            await on_webhook_processed(session, event, Envelope.wrap(event, source="/test"))
        listed = await client.get(
            "/api/v1/admin/webhook-receipts",
            params={"source": source["name"], "status": "failed"},
            headers=admin,
        )
        (receipt,) = listed.json()["items"]
        assert receipt["webhook_id"] == headers["webhook-id"]
        assert receipt["status_detail"] == "orders: unknown order id 42"

    @pytest.mark.parametrize("erase_first", [False, True], ids=["report-first", "erase-first"])
    async def test_erasing_the_customer_erases_the_stored_body(
        self, client, app, source, admin, erase_first
    ):
        body = b'{"email": "erase.me@example.com", "order": "A-1"}'
        headers = signed(source["secret"]["secret"], body)
        receipt_id = (
            await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        ).json()["receipt_id"]
        customer_id = uuid.uuid4()
        report = WebhookProcessed(
            customer_id=webhook_key(source["name"], headers["webhook-id"]),
            source=source["name"],
            webhook_id=headers["webhook-id"],
            status="processed",
            processed_by="orders",
            processed_at=datetime.now(UTC),
            resolved_customer_ids=[customer_id],
        )
        erased = CustomerErased(customer_id=customer_id, erased_at=datetime.now(UTC))

        async def deliver(event: Event) -> None:
            handler: Any = on_customer_erased if event is erased else on_webhook_processed
            async with app.state.database.session() as session:
                await handler(session, event, Envelope.wrap(event, source="/test"))

        for event in (erased, report) if erase_first else (report, erased):
            await deliver(event)
        detail = (
            await client.get(f"/api/v1/admin/webhook-receipts/{receipt_id}", headers=admin)
        ).json()
        assert detail["customer_ids"] == [str(customer_id)]
        assert (detail["body"], detail["headers"]) == ("", {})
        assert detail["body_erased_at"] is not None
        assert detail["status_detail"] == "orders"
        replay = await client.post(
            f"/api/v1/admin/webhook-receipts/{receipt_id}/replay", headers=admin
        )
        assert replay.status_code == 409
        assert "erased" in replay.json()["detail"]

    async def test_replay_publishes_the_stored_webhook_again(self, client, app, source, admin):
        body = b'{"y": 2}'
        headers = signed(source["secret"]["secret"], body)
        receipt_id = (
            await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        ).json()["receipt_id"]
        replayed = await client.post(
            f"/api/v1/admin/webhook-receipts/{receipt_id}/replay", headers=admin
        )
        assert replayed.status_code == 200
        assert replayed.json()["replays"] == 1
        rows = await outbox_rows(app, webhook_key(source["name"], headers["webhook-id"]))
        ids = {dict(r.headers)["ce_id"] for r in rows}
        assert len(rows) == 2
        assert len(ids) == 2
        assert {json.loads(r.payload)["body"] for r in rows} == {body.decode()}

    async def test_an_unknown_receipt_is_404(self, client, admin):
        response = await client.post(
            f"/api/v1/admin/webhook-receipts/{uuid.uuid4()}/replay", headers=admin
        )
        assert response.status_code == 404


class TestTracing:
    async def test_the_queued_event_continues_the_partners_trace(self, spans, client, app, source):
        trace_id, caller_span = "5cf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
        body = b'{"traced": true}'
        headers = signed(source["secret"]["secret"], body) | {
            "traceparent": f"00-{trace_id}-{caller_span}-01"
        }
        response = await client.post(f"/webhooks/{source['name']}", content=body, headers=headers)
        assert response.status_code == 202, response.text
        [row] = await outbox_rows(app, webhook_key(source["name"], headers["webhook-id"]))
        traceparent = dict(row.headers)["traceparent"]
        version, trace, parent, flags = traceparent.split("-")
        # same trace, a span of ours as the parent (never the caller's own span id)
        assert (version, trace, flags) == ("00", trace_id, "01")
        assert parent != caller_span
        [producer] = [
            s
            for s in spans.get_finished_spans()
            if s.name == "create rapport.webhook.v1" and format(s.context.span_id, "016x") == parent
        ]
        assert format(producer.context.trace_id, "032x") == trace_id
