"""Receiving partner webhooks: verify, store durably, publish — and report back."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import WebhookReceipt, WebhookSecret, WebhookSource
from gateway.webhooks.batcher import Outcome, ReceiptBatcher
from gateway.webhooks.repository import NewReceipt, WebhookRepository
from shared import tracing
from shared.db import Database
from shared.errors import BadRequest, Conflict, NotFound, Unauthorized
from shared.events import Envelope, WebhookProcessed, WebhookReceived, webhook_key
from shared.messaging import publish
from shared.standard_webhooks import SignatureError, generate_secret, verify

#: Headers never stored or forwarded: credentials of the caller.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class _Source:
    id: UUID
    enabled: bool
    secrets: tuple[str, ...]


class SourceCache:
    """Sources and their valid secrets, cached per process for ``ttl_s`` seconds.

    The front door must not query secrets on every request (≥ 2,000 webhooks/s); a rotation
    or a disabled source therefore takes effect within ``ttl_s`` on other replicas (at once
    on the one that made the change, which invalidates its entry).
    """

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        #: name → (when loaded, source or None for an unknown name)
        self._entries: dict[str, tuple[float, _Source | None]] = {}

    async def get(self, database: Database, name: str) -> _Source | None:
        now = time.monotonic()
        cached = self._entries.get(name)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        entry = None
        async with database.session() as session:
            repository = WebhookRepository(session)
            source = await repository.source(name)
            if source is not None:
                secrets = tuple(await repository.valid_secrets(source.id))
                entry = _Source(source.id, source.enabled, secrets)
        if len(self._entries) > 10_000:  # unknown names must not grow this without bound
            self._entries.clear()
        self._entries[name] = (now, entry)
        return entry

    def invalidate(self, name: str) -> None:
        self._entries.pop(name, None)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise BadRequest(
            f"missing {name} header (Standard Webhooks)",
            errors=[{"pointer": f"/headers/{name}", "detail": "required"}],
        )
    return value


async def receive(
    batcher: ReceiptBatcher,
    database: Database,
    cache: SourceCache,
    *,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int,
) -> Outcome:
    """Verify a webhook and store it with its event, or recognise a repeat.

    ``headers``: the request's, names in lower case. The hot path of the front door: the
    receipt and its outbox row are written by the :class:`ReceiptBatcher` (group commit, one
    transaction for many concurrent webhooks); this returns once they are committed.
    """
    entry = await cache.get(database, source)
    if entry is None or not entry.enabled:
        raise NotFound(f"no enabled webhook source {source!r}")
    webhook_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if len(webhook_id) > 200:
        raise BadRequest("webhook-id is longer than 200 characters")
    content_type = headers.get("content-type", "application/octet-stream")
    if len(content_type) > 200:
        raise BadRequest("content-type is longer than 200 characters")
    try:
        verify(entry.secrets, webhook_id, timestamp, signature, body, tolerance_s=tolerance_s)
    except SignatureError as exc:
        raise Unauthorized(f"webhook signature rejected: {exc}") from None

    kept = {k: v for k, v in headers.items() if k not in _PRIVATE_HEADERS}
    event = _received_event(source, webhook_id, kept, body, content_type)
    # the event carries the request's trace (a partner's traceparent, or the edge's span)
    with tracing.producer_span([event.topic], "gateway", 1) as trace:
        envelope = Envelope.wrap(event, source=database.event_source, extensions=trace)
    return await batcher.store(
        NewReceipt(
            id=uuid4(),
            source=source,
            webhook_id=webhook_id,
            headers=json.dumps(kept),
            body=body,
            content_type=content_type,
            envelope=envelope,
        )
    )


def _received_event(
    source: str, webhook_id: str, headers: dict[str, str], body: bytes, content_type: str
) -> WebhookReceived:
    encoding: Literal["utf-8", "base64"] = "utf-8"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return WebhookReceived(
        customer_id=webhook_key(source, webhook_id),
        source=source,
        webhook_id=webhook_id,
        received_at=datetime.now(UTC),
        content_type=content_type,
        body=text,
        body_encoding=encoding,
        headers=headers,
    )


async def replay(session: AsyncSession, receipt: WebhookReceipt) -> WebhookReceipt:
    """Publish a stored webhook again (a new event id, so consumers apply it again)."""
    if receipt.body_erased_at is not None:
        raise Conflict(
            "this webhook's body was erased with its customer; it cannot be replayed",
            body_erased_at=receipt.body_erased_at.isoformat(),
        )
    await publish(
        session,
        _received_event(
            receipt.source, receipt.webhook_id, receipt.headers, receipt.body, receipt.content_type
        ),
    )
    receipt.replays += 1
    receipt.status, receipt.status_detail, receipt.processed_at = "published", None, None
    await session.flush()
    return receipt


async def create_source(
    session: AsyncSession, name: str, description: str | None
) -> tuple[WebhookSource, WebhookSecret]:
    repository = WebhookRepository(session)
    if await repository.source(name) is not None:
        raise Conflict(f"webhook source {name!r} exists")
    source = await repository.add_source(WebhookSource(name=name, description=description))
    secret = await repository.add_secret(
        WebhookSecret(source_id=source.id, secret=generate_secret())
    )
    return source, secret


async def rotate_secret(
    session: AsyncSession, source: WebhookSource, overlap_s: int
) -> tuple[WebhookSecret, datetime]:
    """Issue a new secret; the current ones stay valid for ``overlap_s`` seconds."""
    repository = WebhookRepository(session)
    until = datetime.now(UTC) + timedelta(seconds=overlap_s)
    await repository.expire_secrets(source.id, until)
    secret = await repository.add_secret(
        WebhookSecret(source_id=source.id, secret=generate_secret())
    )
    return secret, until


async def record_outcome(session: AsyncSession, event: WebhookProcessed) -> None:
    repository = WebhookRepository(session)
    await repository.set_status(
        event.source,
        event.webhook_id,
        status=event.status,
        detail=(f"{event.processed_by}: {event.detail}" if event.detail else event.processed_by),
        processed_at=event.processed_at,
        customer_ids=event.resolved_customer_ids,
    )
    if event.resolved_customer_ids:
        # One of them may have been erased before this report arrived.
        await repository.erase_bodies(event.resolved_customer_ids)


async def erase_customer(session: AsyncSession, customer_id: UUID) -> int:
    """A customer was erased: empty the stored bodies of the webhooks about them (and those
    reported later). Returns how many receipts were emptied now."""
    repository = WebhookRepository(session)
    await repository.remember_erased(customer_id)
    return await repository.erase_bodies([customer_id])
