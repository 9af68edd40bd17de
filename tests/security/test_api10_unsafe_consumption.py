"""OWASP API10:2023 — Unsafe Consumption of APIs.

Rapport consumes two kinds of third-party input:

* **Partner webhooks** (``POST /webhooks/{source}``, Standard Webhooks): only a message
  signed with the source's secret, over exactly the body sent, within the timestamp
  tolerance, is stored. Forged, tampered, re-signed-by-another-secret, stale (replayed
  captures) and future-dated messages are ``401``; a repeated ``webhook-id`` is accepted
  once and stored once; an unknown source is ``404``. Nothing refused reaches the receipts.
* **customer360's answers** to ``POST /customers:resolve``, consumed by interactions (partner
  events) and orders (partner orders): an answer that is not a JSON object naming a UUID
  ``customer_id`` is treated as customer360 failing (retry later) — never trusted, never a
  crash with a ``KeyError`` / ``ValueError`` in a consumer.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.interactions.interaction.customers import CustomerResolver, ResolverUnavailable
from services.orders.config import Settings as OrdersSettings
from services.orders.partner.customers import CustomerResolver as OrdersResolver
from services.orders.partner.customers import CustomerServiceUnavailable
from services.orders.partner.schemas import PartnerCustomer
from shared.standard_webhooks import sign
from tests.security.conftest import PROBLEM, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Source:
    def __init__(self, stack: Stack, name: str, secret: str) -> None:
        self.stack, self.name, self.secret = stack, name, secret

    async def post(
        self,
        body: bytes,
        *,
        webhook_id: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        signed_body: bytes | None = None,
        signed_id: str | None = None,
    ) -> httpx.Response:
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        timestamp = int(time.time()) if timestamp is None else timestamp
        signature = sign(
            secret or self.secret,
            signed_id or webhook_id,
            timestamp,
            body if signed_body is None else signed_body,
        )
        return await self.stack.client.post(
            f"/webhooks/{self.name}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
            },
        )

    async def receipts(self) -> list[dict[str, Any]]:
        response = await self.stack.client.get(
            "/api/v1/admin/webhook-receipts",
            params={"source": self.name, "limit": 200},
            headers=self.stack.auth(),
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


async def source(stack: Stack) -> Source:
    name = f"shop{uuid.uuid4().hex[:8]}"
    created = await stack.client.post(
        "/api/v1/admin/webhook-sources", json={"name": name}, headers=stack.auth()
    )
    assert created.status_code == 201, created.text
    return Source(stack, name, created.json()["secret"]["secret"])


MADE_UP = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = json.dumps({"type": "order.created", "id": "A-1001"}).encode()


class TestPartnerWebhooks:
    async def test_a_correctly_signed_webhook_is_stored_once(self, stack: Stack):
        shop = await source(stack)
        webhook_id = f"msg_{uuid.uuid4().hex}"
        first = await shop.post(BODY, webhook_id=webhook_id)
        again = await shop.post(BODY, webhook_id=webhook_id)  # the partner's retry
        assert (first.status_code, again.status_code) == (202, 200)  # 200: seen before
        receipts = await shop.receipts()
        assert [r["webhook_id"] for r in receipts] == [webhook_id]

    async def test_forged_tampered_stale_and_future_webhooks_are_refused(self, stack: Stack):
        shop = await source(stack)
        other = await source(stack)
        now = int(time.time())
        tolerance = stack.settings.webhook_tolerance_s
        attempts = {
            "another source's secret": await shop.post(BODY, secret=other.secret),
            "a made-up secret": await shop.post(BODY, secret=MADE_UP),
            "a tampered body": await shop.post(
                BODY.replace(b"A-1001", b"A-9999"), signed_body=BODY
            ),
            "a signature for another id": await shop.post(BODY, signed_id="msg_other"),
            "a stale capture": await shop.post(BODY, timestamp=now - tolerance - 60),
            "a future timestamp": await shop.post(BODY, timestamp=now + tolerance + 60),
        }
        assert {k: r.status_code for k, r in attempts.items()} == dict.fromkeys(attempts, 401)
        assert all(r.headers["content-type"] == PROBLEM for r in attempts.values())
        assert await shop.receipts() == []

    async def test_a_captured_webhook_replayed_after_the_tolerance_is_refused(self, stack: Stack):
        shop = await source(stack)
        captured_at = int(time.time()) - stack.settings.webhook_tolerance_s - 5
        webhook_id = f"msg_{uuid.uuid4().hex}"
        signature = sign(shop.secret, webhook_id, captured_at, BODY)
        replayed = await stack.client.post(
            f"/webhooks/{shop.name}",
            content=BODY,
            headers={
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(captured_at),
                "webhook-signature": signature,
            },
        )
        assert replayed.status_code == 401
        assert await shop.receipts() == []

    async def test_missing_signature_headers_are_refused(self, stack: Stack):
        shop = await source(stack)
        for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            headers = {
                "Content-Type": "application/json",
                "webhook-id": "msg_x",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": sign(shop.secret, "msg_x", int(time.time()), BODY),
            }
            del headers[missing]
            response = await stack.client.post(
                f"/webhooks/{shop.name}", content=BODY, headers=headers
            )
            assert response.status_code in (400, 401), (missing, response.text)
        assert await shop.receipts() == []

    async def test_an_unknown_source_is_404(self, stack: Stack):
        ghost = Source(stack, f"ghost{uuid.uuid4().hex[:8]}", MADE_UP)
        response = await ghost.post(BODY)
        assert response.status_code == 404


# --- customer360's answers, as its consumers read them ----------------------------------------


def customer360(status: int, body: bytes, content_type: str = "application/json") -> Starlette:
    """A stand-in customer360 answering ``POST /customers:resolve`` with ``body``."""

    async def resolve(request: Request) -> Response:
        await request.body()
        return Response(body, status_code=status, media_type=content_type)

    return Starlette(routes=[Route("/customers:resolve", resolve, methods=["POST"])])


BAD_ANSWERS = [
    (200, b"<html>maintenance</html>", "text/html"),
    (200, b"{}", "application/json"),
    (201, b'{"customer_id": "not-a-uuid"}', "application/json"),
    (200, b'{"customer_id": null}', "application/json"),
    (200, b'{"customer_id": 42}', "application/json"),
    (200, b'["3b4c"]', "application/json"),
]
GOOD = uuid.uuid4()


class TestCustomer360Answers:
    @pytest.mark.parametrize(("status", "body", "content_type"), BAD_ANSWERS)
    async def test_interactions_treats_a_malformed_answer_as_unavailable(
        self, status: int, body: bytes, content_type: str
    ):
        resolver = CustomerResolver(
            "http://customer360",
            "s" * 40,
            attempts=1,
            mounts={
                "http://customer360": httpx.ASGITransport(
                    app=customer360(status, body, content_type)
                )
            },
        )
        try:
            with pytest.raises(ResolverUnavailable):
                await resolver.resolve({"email": "a@example.com"}, create=True)
        finally:
            await resolver.close()

    async def test_interactions_accepts_a_well_formed_answer(self):
        answer = json.dumps({"customer_id": str(GOOD)}).encode()
        resolver = CustomerResolver(
            "http://customer360",
            "s" * 40,
            mounts={"http://customer360": httpx.ASGITransport(app=customer360(200, answer))},
        )
        try:
            assert await resolver.resolve({"email": "a@example.com"}, create=True) == GOOD
        finally:
            await resolver.close()

    @pytest.mark.parametrize(("status", "body", "content_type"), BAD_ANSWERS)
    async def test_orders_treats_a_malformed_answer_as_unavailable(
        self, status: int, body: bytes, content_type: str
    ):
        settings = OrdersSettings(environment="test", customer360_url="http://customer360")
        resolver = OrdersResolver(
            settings, transport=httpx.ASGITransport(app=customer360(status, body, content_type))
        )
        try:
            with pytest.raises(CustomerServiceUnavailable):
                await resolver.resolve("shop", PartnerCustomer(email="a@example.com"))
        finally:
            await resolver.close()

    async def test_orders_accepts_a_well_formed_answer(self):
        settings = OrdersSettings(environment="test", customer360_url="http://customer360")
        answer = json.dumps({"customer_id": str(GOOD)}).encode()
        resolver = OrdersResolver(
            settings, transport=httpx.ASGITransport(app=customer360(201, answer))
        )
        try:
            assert await resolver.resolve("shop", PartnerCustomer(email="a@example.com")) == GOOD
        finally:
            await resolver.close()
