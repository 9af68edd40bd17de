from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from services.orders.customers import ensure_visible
from services.orders.models import Order
from services.orders.models.base import Base, customer_scope
from services.orders.order import service
from services.orders.order.schemas import (
    OrderCreate,
    OrderRead,
    OrderStatus,
    PaymentCreate,
    PaymentRead,
    RefundCreate,
    RefundRead,
    SalesChannel,
    StatusChange,
)
from shared.auth import Principal, PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import NotFound, problem_responses
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage, paginate
from shared.privacy import visible_customers

router = APIRouter(prefix="/orders", tags=["orders"])

_IDEMPOTENCY = Base.metadata.tables["orders.idempotency_key"]
_READ = [Depends(require_scopes("orders:read"))]
_WRITE = [Depends(require_scopes("orders:write"))]


async def _visible_order(
    session: SessionDep, order_id: UUID, principal: Principal, *, lock: bool = False
) -> Order:
    order = await service.get_order(session, order_id, lock=lock)
    if principal.scope_mode != "all" and not await session.scalar(
        select(visible_customers(principal, customer_scope.c.customer_id, customer_scope)).where(
            customer_scope.c.customer_id == order.customer_id
        )
    ):
        raise NotFound(f"order {order_id} does not exist")
    return order


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Place an order",
    dependencies=_WRITE,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def create_order(
    body: OrderCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderRead:
    """Place an order. Totals, discounts and taxes are computed here, exactly (decimal
    strings in and out, rounded to the currency's minor unit half-to-even, tax per line).

    Every product must be priced in the order's currency; amounts with more decimals than
    the currency has are refused. A partner's `source` + `external_id` names one order: a
    repeat answers `409` with `existing_order_id`. With an `Idempotency-Key`, a retry
    returns the first answer. A customer outside the caller's data scope is a `404`.
    Publishes `rapport.order.placed.v1`.
    """
    await ensure_visible(session, principal, body.customer_id)
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="create_order",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed()) is not None:
        return replayed  # type: ignore[return-value]
    order = await service.create_order(session, body, principal)
    read = OrderRead.model_validate(order)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    response.headers["Location"] = f"/orders/{order.id}"
    return read


@router.get(
    "/{order_id}",
    summary="Get an order",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404),
)
async def get_order(order_id: UUID, session: SessionDep, principal: PrincipalDep) -> OrderRead:
    """One order with its lines, payments and refunds."""
    return OrderRead.model_validate(await _visible_order(session, order_id, principal))


@router.get(
    "",
    summary="List orders",
    dependencies=_READ,
    responses=problem_responses(400, 401, 403),
)
async def list_orders(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    customer_id: UUID | None = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    channel: SalesChannel | None = None,
    placed_after: datetime | None = None,
    placed_before: datetime | None = None,
) -> CursorPage[OrderRead]:
    """Orders within the caller's data scope, newest first — one customer's purchase
    history across every sales channel with `customer_id`."""
    statement = select(Order).where(visible_customers(principal, Order.customer_id, customer_scope))
    filters: list[tuple[Any, Any]] = [
        (customer_id, lambda v: Order.customer_id == v),
        (status_, lambda v: Order.status == v),
        (channel, lambda v: Order.channel == v),
        (placed_after, lambda v: Order.placed_at >= v),
        (placed_before, lambda v: Order.placed_at < v),
    ]
    for value, condition in filters:
        if value is not None:
            statement = statement.where(condition(value))
    items: list[Order]
    items, next_cursor = await paginate(
        session,
        statement,
        keys=[Order.placed_at, Order.id],
        key_of=lambda o: (o.placed_at, o.id),
        params=page,
        descending=True,
    )
    return CursorPage(items=[OrderRead.model_validate(o) for o in items], next_cursor=next_cursor)


@router.post(
    "/{order_id}/payments",
    status_code=status.HTTP_201_CREATED,
    summary="Record a payment",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_payment(
    order_id: UUID, body: PaymentCreate, session: SessionDep, principal: PrincipalDep
) -> PaymentRead:
    """A payment towards a pending order; the order becomes `paid` when payments reach its
    total. More than is due answers `409`."""
    order = await _visible_order(session, order_id, principal, lock=True)
    return PaymentRead.model_validate(await service.add_payment(session, order, body, principal))


@router.post(
    "/{order_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    summary="Refund money",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_refund(
    order_id: UUID, body: RefundCreate, session: SessionDep, principal: PrincipalDep
) -> RefundRead:
    """Pay back part or all of what was paid: the order becomes `partially_refunded` or
    `refunded`. Refunds together may never exceed payments (`409`)."""
    order = await _visible_order(session, order_id, principal, lock=True)
    return RefundRead.model_validate(await service.add_refund(session, order, body, principal))


@router.post(
    "/{order_id}/status",
    summary="Fulfil or cancel an order",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def change_status(
    order_id: UUID, body: StatusChange, session: SessionDep, principal: PrincipalDep
) -> OrderRead:
    """`pending → cancelled`, `paid | partially_refunded → fulfilled`; anything else answers
    `409` with the allowed moves. Payments and refunds move the status themselves.
    Publishes `rapport.order.status_changed.v1`."""
    order = await _visible_order(session, order_id, principal, lock=True)
    return OrderRead.model_validate(await service.change_status(session, order, body.status))
