"""Orders: placing them, payments, refunds and status changes — each with its event.

Every change runs in one transaction with its outbox event (``OrderPlaced`` on create,
``OrderStatusChanged`` whenever the status moves). Payments and refunds lock the order row
(``FOR UPDATE``) so two concurrent refunds can never together exceed what was paid. Placing
an order also updates the recommender's co-purchase counts, in the same transaction.

Coupons (``coupon_codes``) and loyalty points (``loyalty_points``) are validated, priced and
claimed in the same transaction (services/orders/promotion): they add to the lines'
discounts, before tax. Loyalty follows the status: ``paid`` earns points, a refund takes
back the refunded share, ``cancelled`` / ``refunded`` release coupons and spent points
(services/orders/loyalty).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.loyalty import service as loyalty
from services.orders.models import Order, OrderLine, Payment, Product, Refund
from services.orders.money import fits_currency, minor_units, quantum
from services.orders.order.pricing import TRANSITIONS, price_line, refund_status, total_order
from services.orders.order.schemas import OrderCreate, PaymentCreate, RefundCreate
from services.orders.promotion import service as promotions
from services.orders.recommendation.repository import record_purchase
from shared.auth import Principal
from shared.errors import Conflict, NotFound, raise_if_invalid
from shared.events import OrderCoupon, OrderItem, OrderPlaced, OrderStatusChanged
from shared.messaging import publish

__all__ = ["add_payment", "add_refund", "change_status", "create_order", "get_order"]


class DuplicateOrder(Conflict):
    slug = "duplicate-order"


class IllegalTransition(Conflict):
    slug = "illegal-order-transition"


async def create_order(session: AsyncSession, data: OrderCreate, principal: Principal) -> Order:
    """Price and store an order. A partner order id seen before answers 409 naming it."""
    if data.external_id is not None and data.source is None:
        raise_if_invalid([{"pointer": "/body/source", "detail": "required with external_id"}])
    if data.source is not None and data.external_id is not None:
        existing = await session.scalar(
            select(Order.id).where(
                Order.source == data.source, Order.external_id == data.external_id
            )
        )
        if existing is not None:
            raise DuplicateOrder(
                f"order {data.source}:{data.external_id} exists", existing_order_id=str(existing)
            )
    now = datetime.now(UTC)
    if data.placed_at is not None and data.placed_at > now + timedelta(minutes=5):
        raise_if_invalid([{"pointer": "/body/placed_at", "detail": "is in the future"}])

    ids = {line.product_id for line in data.lines}
    products = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(ids)))}
    errors: list[dict[str, str]] = []
    lines: list[OrderLine] = []
    for i, given in enumerate(data.lines):
        at = f"/body/lines/{i}"
        product = products.get(given.product_id)
        if product is None or not product.active:
            errors.append({"pointer": f"{at}/product_id", "detail": "unknown or inactive product"})
            continue
        if product.currency != data.currency:
            errors.append(
                {
                    "pointer": f"{at}/product_id",
                    "detail": f"priced in {product.currency}, the order is in {data.currency}",
                }
            )
            continue
        unit_price = given.unit_price if given.unit_price is not None else product.price
        for field, amount in (("unit_price", unit_price), ("discount", given.discount)):
            if not fits_currency(amount, data.currency):
                errors.append(
                    {
                        "pointer": f"{at}/{field}",
                        "detail": f"{data.currency} has {minor_units(data.currency)} decimal "
                        "places",
                    }
                )
        # In the currency's minor unit from here on (amounts that did not fit were refused).
        unit_price = unit_price.quantize(quantum(data.currency))
        discount = given.discount.quantize(quantum(data.currency))
        try:
            price_line(given.quantity, unit_price, discount, given.tax_rate, data.currency)
        except ValueError as exc:
            errors.append({"pointer": f"{at}/discount", "detail": str(exc)})
            continue
        lines.append(
            OrderLine(
                position=i,
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                quantity=given.quantity,
                unit_price=unit_price,
                discount=discount,
                promotion_discount=Decimal(0),
                tax_rate=given.tax_rate,
            )
        )
    raise_if_invalid(errors)
    applied = None
    if data.coupon_codes or data.loyalty_points:
        applied = await promotions.apply_discounts(
            session,
            customer_id=data.customer_id,
            currency=data.currency,
            lines=[
                promotions.DraftLine(
                    li.product_id,
                    products[li.product_id].category,
                    li.quantity * li.unit_price - li.discount,
                )
                for li in lines
            ],
            coupon_codes=data.coupon_codes,
            loyalty_points=data.loyalty_points,
            now=now,
        )
        for li, extra in zip(lines, applied.line_discounts, strict=True):
            li.promotion_discount = extra
            li.discount += extra
    priced = [
        price_line(li.quantity, li.unit_price, li.discount, li.tax_rate, data.currency)
        for li in lines
    ]
    for li, price in zip(lines, priced, strict=True):
        li.tax, li.total = price.tax, price.total
    totals = total_order(priced)
    order = Order(
        customer_id=data.customer_id,
        status="pending",
        channel=data.channel,
        currency=data.currency,
        subtotal=totals.subtotal,
        discount_total=totals.discount_total,
        tax_total=totals.tax_total,
        total=totals.total,
        paid_total=Decimal(0),
        refunded_total=Decimal(0),
        source=data.source,
        external_id=data.external_id,
        shipping_address=data.shipping_address,
        note=data.note,
        placed_at=data.placed_at or now,
        created_by=principal.subject,
        lines=lines,
        payments=[],
        refunds=[],
        discounts=applied.discounts if applied is not None else [],
    )
    session.add(order)
    await session.flush()
    await record_purchase(session, order.customer_id, [li.product_id for li in lines])
    await publish(
        session,
        OrderPlaced(
            customer_id=order.customer_id,
            order_id=order.id,
            total=order.total,
            currency=order.currency,
            channel=order.channel,
            placed_at=order.placed_at,
            items=[
                OrderItem(
                    product_id=li.product_id, sku=li.sku, quantity=li.quantity, total=li.total
                )
                for li in lines
            ],
            source=order.source,
            external_id=order.external_id,
            discount_total=order.discount_total,
            coupons=[
                OrderCoupon(code=d.code, promotion_id=d.promotion_id, amount=d.amount)
                for d in order.discounts
                if d.kind == "coupon" and d.code is not None and d.promotion_id is not None
            ],
            points_redeemed=sum(d.points or 0 for d in order.discounts if d.kind == "points"),
        ),
    )
    if applied is not None:  # last: the rows it locks stay locked only until the commit
        await promotions.claim_discounts(session, order, applied, now)
    if order.total == 0:  # nothing to pay: paid at once
        await _move(session, order, "paid")
    return order


async def get_order(session: AsyncSession, order_id: UUID, *, lock: bool = False) -> Order:
    statement = select(Order).where(Order.id == order_id)
    if lock:
        statement = statement.with_for_update()
    order = await session.scalar(statement)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


async def _move(session: AsyncSession, order: Order, status: str) -> None:
    previous, order.status = order.status, status
    now = datetime.now(UTC)
    order.updated_at = now
    if status == "fulfilled":
        order.fulfilled_at = now
    elif status == "cancelled":
        order.cancelled_at = now
    await session.flush()
    if status == "paid":
        await loyalty.earn_for_order(session, order, now)
    elif status in ("partially_refunded", "refunded"):
        await loyalty.reverse_for_refund(session, order, now)
    if status in ("cancelled", "refunded"):
        await promotions.release_discounts(session, order, now)
    await publish(
        session,
        OrderStatusChanged(
            customer_id=order.customer_id,
            order_id=order.id,
            status=status,
            previous_status=previous,
            changed_at=now,
            total=order.total,
            paid_total=order.paid_total,
            refunded_total=order.refunded_total,
            currency=order.currency,
        ),
    )


def _money_error(field: str, order: Order, amount: Decimal) -> None:
    if not fits_currency(amount, order.currency):
        raise_if_invalid(
            [
                {
                    "pointer": f"/body/{field}",
                    "detail": f"{order.currency} has {minor_units(order.currency)} decimal places",
                }
            ]
        )


async def add_payment(
    session: AsyncSession, order: Order, data: PaymentCreate, principal: Principal
) -> Payment:
    """Record a payment; the order is ``paid`` once payments reach its total."""
    _money_error("amount", order, data.amount)
    if order.status != "pending":
        raise IllegalTransition(f"a {order.status} order takes no payments")
    due = (order.total - order.paid_total).quantize(quantum(order.currency))
    if data.amount > due:
        raise Conflict(f"the payment exceeds what is due ({due} {order.currency})", due=str(due))
    payment = Payment(
        order_id=order.id,
        amount=data.amount,
        method=data.method,
        reference=data.reference,
        created_by=principal.subject,
    )
    order.payments.append(payment)
    order.paid_total += data.amount
    await session.flush()
    if order.paid_total == order.total:
        await _move(session, order, "paid")
    return payment


async def add_refund(
    session: AsyncSession, order: Order, data: RefundCreate, principal: Principal
) -> Refund:
    """Pay money back; never more than was paid, over all refunds together."""
    _money_error("amount", order, data.amount)
    if order.status not in ("paid", "fulfilled", "partially_refunded"):
        raise IllegalTransition(f"a {order.status} order cannot be refunded")
    refundable = (order.paid_total - order.refunded_total).quantize(quantum(order.currency))
    if data.amount > refundable:
        raise Conflict(
            f"the refund exceeds what was paid and not yet refunded "
            f"({refundable} {order.currency})",
            refundable=str(refundable),
        )
    refund = Refund(
        order_id=order.id, amount=data.amount, reason=data.reason, created_by=principal.subject
    )
    order.refunds.append(refund)
    order.refunded_total += data.amount
    await session.flush()
    await _move(session, order, refund_status(order.paid_total, order.refunded_total))
    return refund


async def change_status(session: AsyncSession, order: Order, status: str) -> Order:
    allowed = TRANSITIONS[order.status]
    if status == "fulfilled" and order.fulfilled_at is not None:
        allowed = frozenset()
    if status not in allowed:
        raise IllegalTransition(
            f"a {order.status} order cannot become {status}",
            allowed=sorted(allowed),
        )
    await _move(session, order, status)
    return order
