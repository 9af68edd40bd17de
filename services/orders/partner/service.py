"""Partner orders: shop-platform webhooks applied to orders, once each, in any arrival order.

What happens to a ``WebhookReceived`` (see :mod:`services.orders.partner.schemas` for the
body):

* Not an order webhook (no JSON, or a ``type`` other than ``order.*``): nothing — it belongs
  to another service, and orders reports nothing about it.
* Invalid (bad money, no customer key, unknown SKU, currency mismatch, an illegal move such
  as refunding more than was paid): reported ``failed`` with the reason; no order is touched.
  The row is kept as ``failed``; a later replay (after fixing the cause) tries again.
* **Idempotent**: each partner action is named by ``(source, order id, kind, ref)`` — ref is
  the payment/refund id, else the ``webhook-id``; ``""`` for created and cancelled, which
  happen once per order. A replay (the gateway's replay, a partner's re-send) finds its row
  and is reported ``ignored``: no order, payment, refund or partner-event row is written.
  An ``order.created`` for an order that already exists (placed through the API with the same
  ``source`` + ``external_id``) links to it instead of placing a second one.
* **Out of order**: webhooks are keyed by their own id, so they reach Kafka partitions
  independently and ``paid`` may arrive before ``created``. We *park* such an action (its
  payload kept in ``partner_event``) and apply it when it becomes applicable: when its order
  is created, or — for a refund that arrives before its payment — when the order is paid.
  Parked actions are applied in the partner's own order (the body's ``timestamp``, then
  arrival). A parked webhook is reported only once applied (the gateway's log shows it as
  published meanwhile). We park rather than create a placeholder order because a placeholder
  would need a customer, lines and a currency that only ``created`` carries, and would be
  visible, with wrong totals, to every consumer of order events.

* **Expiry**: an action parked for longer than ``ORDERS_PARTNER_PARKED_TTL_S`` (7 days) is
  given up by a periodic pass (:func:`expire_parked`): the row becomes ``failed``, its payload
  (which may hold personal data) is cleared, and it is reported ``failed``, so the gateway's
  log shows what never arrived. Replaying it once its order exists applies it as any failed
  webhook's replay does; a replay re-parks with a fresh ``received_at`` (the latest attempt).

A transaction-scoped advisory lock per partner order serialises concurrent webhooks of one
order (several consumers, or a parked action and its ``created`` on two partitions), so an
action can never be parked just after the drain that should have applied it. The expiry pass
takes the same lock (without waiting: an order whose webhook is being applied is left to the
next pass), so it never gives up on an action that is being applied.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Order, PartnerEvent, Product
from services.orders.money import fits_currency, minor_units, quantum
from services.orders.order import service as orders
from services.orders.order.schemas import LineCreate, OrderCreate, PaymentCreate, RefundCreate
from services.orders.partner.customers import CustomerNotResolved, CustomerResolver
from services.orders.partner.schemas import (
    DATA_MODELS,
    ORDER_WEBHOOK_TYPES,
    OrderCancelledData,
    OrderCreatedData,
    OrderPaidData,
    OrderRefundedData,
    PartnerData,
    PartnerKind,
    PartnerWebhook,
)
from shared.auth import Principal
from shared.db import Database
from shared.errors import RapportError
from shared.events import WebhookProcessed, WebhookReceived, webhook_key
from shared.messaging import publish

__all__ = ["expire_parked", "handle_webhook", "run_expiry_pass"]


Status = Literal["processed", "ignored", "failed"]
#: What an order's ``source`` may be (the gateway allows longer source names).
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,49}")


@dataclass(frozen=True, slots=True)
class _Parsed:
    kind: PartnerKind
    data: PartnerData
    occurred_at: datetime


class _Invalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: Literal["applied", "parked", "failed"]
    detail: str
    order_id: UUID | None = None


def _parse(event: WebhookReceived) -> _Parsed | None:
    """The order action in ``event``; ``None`` if it is not an order webhook; raises
    :class:`_Invalid` for an order webhook orders cannot read."""
    try:
        raw = base64.b64decode(event.body) if event.body_encoding == "base64" else event.body
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("type") not in ORDER_WEBHOOK_TYPES:
        return None
    kind = ORDER_WEBHOOK_TYPES[body["type"]]
    try:
        envelope = PartnerWebhook.model_validate(body)
        data = DATA_MODELS[kind].model_validate(envelope.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise _Invalid(f"invalid {body['type']} body: {problems}") from None
    occurred_at = envelope.timestamp or event.received_at
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return _Parsed(kind, data, occurred_at)  # type: ignore[arg-type]


def _lock_key(source: str, external_id: str) -> str:
    """The advisory lock that serialises everything done to one partner order."""
    return f"orders:partner:{source}:{external_id}"


def _ref(parsed: _Parsed, webhook_id: str) -> str:
    data = parsed.data
    if isinstance(data, OrderPaidData):
        return data.payment_id or webhook_id
    if isinstance(data, OrderRefundedData):
        return data.refund_id or webhook_id
    return ""


async def _report(
    session: AsyncSession,
    source: str,
    webhook_id: str,
    status: Status,
    detail: str,
    order_id: UUID | None = None,
) -> None:
    # Naming the order's customer lets the gateway erase the stored webhook body with them.
    customer_id = (
        await session.scalar(select(Order.customer_id).where(Order.id == order_id))
        if order_id is not None
        else None
    )
    await publish(
        session,
        WebhookProcessed(
            customer_id=webhook_key(source, webhook_id),
            source=source,
            webhook_id=webhook_id,
            status=status,
            detail=detail[:1000],
            processed_by="orders",
            processed_at=datetime.now(UTC),
            resolved_customer_ids=[customer_id] if customer_id else [],
        ),
    )


async def handle_webhook(
    session: AsyncSession, event: WebhookReceived, resolver: CustomerResolver
) -> None:
    """Apply one partner webhook (see the module docstring); runs in the consumer's
    transaction, with the inbox claim."""
    try:
        parsed = _parse(event)
    except _Invalid as exc:
        await _report(session, event.source, event.webhook_id, "failed", str(exc))
        return
    if parsed is None:
        return
    source, external_id = event.source, parsed.data.id
    if not _SOURCE.fullmatch(source):
        await _report(
            session, source, event.webhook_id, "failed", "orders takes sources of 1-50 characters"
        )
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": _lock_key(source, external_id)},
    )
    ref = _ref(parsed, event.webhook_id)
    row = await session.scalar(
        select(PartnerEvent).where(
            PartnerEvent.source == source,
            PartnerEvent.external_order_id == external_id,
            PartnerEvent.kind == parsed.kind,
            PartnerEvent.event_ref == ref,
        )
    )
    if row is not None and row.status != "failed":
        what = "applied" if row.status == "applied" else "parked, waiting for its order"
        await _report(
            session,
            source,
            event.webhook_id,
            "ignored",
            f"duplicate: order.{parsed.kind} {external_id} already {what} "
            f"(webhook {row.webhook_id})",
        )
        return
    if row is None:
        # Added only once settled: the attempt's queries must not flush a half-made row.
        row = PartnerEvent(
            source=source, external_order_id=external_id, kind=parsed.kind, event_ref=ref
        )
    row.webhook_id = event.webhook_id
    row.occurred_at = parsed.occurred_at
    # The latest attempt: a failed (e.g. expired) action replayed and parked again gets a
    # whole new wait for its order.
    row.received_at = datetime.now(UTC)

    outcome = await _attempt(session, source, parsed, resolver)
    await _settle(session, row, parsed, outcome)
    if outcome.state == "applied":
        await _drain(session, source, external_id, resolver)


async def _settle(
    session: AsyncSession, row: PartnerEvent, parsed: _Parsed, outcome: _Outcome
) -> None:
    row.status, row.detail, row.order_id = outcome.state, outcome.detail[:1000], outcome.order_id
    session.add(row)
    if outcome.state == "parked":
        row.payload = parsed.data.model_dump(mode="json")
    else:
        row.payload = None  # the order holds what matters; the payload may hold personal data
        row.applied_at = datetime.now(UTC) if outcome.state == "applied" else None
        status: Status = "processed" if outcome.state == "applied" else "failed"
        await _report(session, row.source, row.webhook_id, status, outcome.detail, outcome.order_id)
    await session.flush()


async def _drain(
    session: AsyncSession, source: str, external_id: str, resolver: CustomerResolver
) -> None:
    """Apply the parked actions of this order that have become applicable, in the partner's
    order, until a pass applies nothing more (a refund may wait for a payment)."""
    while True:
        parked = list(
            await session.scalars(
                select(PartnerEvent)
                .where(
                    PartnerEvent.source == source,
                    PartnerEvent.external_order_id == external_id,
                    PartnerEvent.status == "parked",
                )
                .order_by(PartnerEvent.occurred_at, PartnerEvent.received_at, PartnerEvent.id)
            )
        )
        progressed = False
        for row in parked:
            kind: PartnerKind = row.kind  # type: ignore[assignment]
            data = DATA_MODELS[kind].model_validate(row.payload)
            parsed = _Parsed(kind, data, row.occurred_at)  # type: ignore[arg-type]
            outcome = await _attempt(session, source, parsed, resolver)
            if outcome.state == "parked":
                continue
            progressed = True
            await _settle(
                session,
                row,
                parsed,
                _Outcome(outcome.state, f"{outcome.detail} (was parked)", outcome.order_id),
            )
        if not progressed:
            return


async def _attempt(
    session: AsyncSession, source: str, parsed: _Parsed, resolver: CustomerResolver
) -> _Outcome:
    principal = Principal(subject=f"webhook:{source}", kind="service")
    if isinstance(parsed.data, OrderCreatedData):
        return await _create(session, source, parsed.data, principal, resolver)
    order = await session.scalar(
        select(Order)
        .where(Order.source == source, Order.external_id == parsed.data.id)
        .with_for_update()
    )
    if order is None:
        return _Outcome("parked", f"order {parsed.data.id} not created yet")
    data = parsed.data
    if isinstance(data, OrderPaidData):
        amount = data.amount if data.amount is not None else order.total - order.paid_total
        if amount <= 0:
            return _Outcome("failed", f"nothing is due on the {order.status} order", order.id)
        payment = PaymentCreate(amount=amount, method=data.gateway, reference=data.payment_id)
        action: Callable[[], Awaitable[object]] = lambda: orders.add_payment(  # noqa: E731
            session, order, payment, principal
        )
        done = f"paid {amount.quantize(quantum(order.currency))} {order.currency}"
    elif isinstance(data, OrderRefundedData):
        if order.status == "pending":
            return _Outcome("parked", "refund waits for the order's payment", order.id)
        refund = RefundCreate(amount=data.amount, reason=data.reason)
        action = lambda: orders.add_refund(session, order, refund, principal)  # noqa: E731
        done = f"refunded {data.amount.quantize(quantum(order.currency))} {order.currency}"
    else:
        assert isinstance(data, OrderCancelledData)
        action = lambda: orders.change_status(session, order, "cancelled")  # noqa: E731
        done = "cancelled"
    return await _guarded(session, action, _Outcome("applied", done, order.id), order.id)


async def _guarded(
    session: AsyncSession,
    action: Callable[[], Awaitable[object]],
    success: _Outcome,
    order_id: UUID | None,
) -> _Outcome:
    """Run ``action`` in a savepoint: a refusal leaves nothing half-written."""
    try:
        async with session.begin_nested():
            await action()
    except RapportError as exc:
        return _Outcome("failed", str(exc.detail or exc), order_id)
    except ValidationError as exc:
        return _Outcome("failed", str(exc.errors()[0]["msg"]), order_id)
    return success


async def _create(
    session: AsyncSession,
    source: str,
    data: OrderCreatedData,
    principal: Principal,
    resolver: CustomerResolver,
) -> _Outcome:
    existing = await session.scalar(
        select(Order.id).where(Order.source == source, Order.external_id == data.id)
    )
    if existing is not None:
        return _Outcome("applied", f"order {data.id} already placed as {existing}", existing)
    skus = {line.sku for line in data.line_items}
    found = {
        p.sku: p
        for p in await session.scalars(
            select(Product).where(Product.sku.in_(skus), Product.active.is_(True))
        )
    }
    products = {sku: p.id for sku, p in found.items()}
    unknown = sorted(skus - products.keys())
    if unknown:
        return _Outcome("failed", f"unknown or inactive SKU(s): {', '.join(unknown)}")
    # Checked before resolving, so a refused order leaves no new prospect in customer360
    # (the order service checks all of it again, and more).
    others = sorted({p.currency for p in found.values()} - {data.currency})
    if others:
        return _Outcome(
            "failed", f"products priced in {', '.join(others)}, the order is in {data.currency}"
        )
    if not all(
        fits_currency(line.price, data.currency) and fits_currency(line.discount, data.currency)
        for line in data.line_items
    ):
        return _Outcome(
            "failed",
            f"{data.currency} has {minor_units(data.currency)} decimal places: a price or "
            "discount has more",
        )
    try:
        customer_id = await resolver.resolve(source, data.customer)
    except CustomerNotResolved as exc:
        return _Outcome("failed", str(exc))
    placed: list[Order] = []

    async def place() -> None:
        body = OrderCreate(
            customer_id=customer_id,
            currency=data.currency,
            channel=data.channel,
            lines=[
                LineCreate(
                    product_id=products[line.sku],
                    quantity=line.quantity,
                    unit_price=line.price,
                    discount=line.discount,
                    tax_rate=line.tax_rate,
                )
                for line in data.line_items
            ],
            source=source,
            external_id=data.id,
            placed_at=data.created_at,
            shipping_address=data.shipping_address,
            note=data.note,
        )
        placed.append(await orders.create_order(session, body, principal))

    outcome = await _guarded(session, place, _Outcome("applied", "placed"), None)
    if outcome.state != "applied":
        return outcome
    order = placed[0]
    return _Outcome("applied", f"placed order {order.id} for customer {customer_id}", order.id)


#: Where an expiry pass goes on from: the last row of a full batch (received_at, id).
ExpiryCursor = tuple[datetime, UUID]


def _duration(ttl: timedelta) -> str:
    seconds = ttl.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


async def expire_parked(
    session: AsyncSession,
    now: datetime,
    ttl: timedelta,
    *,
    after: ExpiryCursor | None = None,
    batch: int = 500,
) -> tuple[int, ExpiryCursor | None]:
    """Give up on up to ``batch`` actions parked since before ``now - ttl`` (oldest first,
    after ``after``), in ``session``'s transaction: each becomes ``failed`` with the reason,
    its payload cleared, and is reported ``failed`` (``WebhookProcessed`` through the outbox).

    Rows another pass holds are skipped, and so are the rows of an order whose advisory lock
    is taken (a webhook of that order is being applied right now): the next pass looks again.
    Returns how many expired and where to go on from (``None``: no more).
    """
    statement = (
        select(PartnerEvent)
        .where(PartnerEvent.status == "parked", PartnerEvent.received_at < now - ttl)
        .order_by(PartnerEvent.received_at, PartnerEvent.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        statement = statement.where(
            tuple_(PartnerEvent.received_at, PartnerEvent.id) > tuple_(*after)
        )
    rows = list(await session.scalars(statement))
    if not rows:
        return 0, None
    # Never waits: a webhook holding an order's lock may wait for one of our row locks.
    locked = set(
        await session.scalars(
            text(
                "SELECT key FROM unnest(CAST(:keys AS text[])) AS key "
                "WHERE pg_try_advisory_xact_lock(hashtextextended(key, 0))"
            ),
            {"keys": sorted({_lock_key(r.source, r.external_order_id) for r in rows})},
        )
    )
    within = _duration(ttl)
    expired = 0
    for row in rows:
        if _lock_key(row.source, row.external_order_id) not in locked:
            continue
        if row.order_id is None:
            reason = f"order.created for {row.external_order_id} did not arrive"
        else:  # a refund waiting for its order's payment
            reason = f"order {row.external_order_id} was not paid"
        row.status, row.payload = "failed", None
        row.detail = (f"gave up: {reason} within {within}; replay this webhook once it has")[:1000]
        await _report(session, row.source, row.webhook_id, "failed", row.detail, row.order_id)
        expired += 1
    await session.flush()
    cursor = (rows[-1].received_at, rows[-1].id) if len(rows) == batch else None
    return expired, cursor


async def run_expiry_pass(
    database: Database, now: datetime, ttl: timedelta, *, batch: int = 500
) -> dict[str, int]:
    """:func:`expire_parked` over every parked action, one batch per transaction."""
    total = 0
    after: ExpiryCursor | None = None
    while True:
        async with database.session() as session:
            expired, after = await expire_parked(session, now, ttl, after=after, batch=batch)
        total += expired
        if after is None:
            return {"expired": total}
