"""Personal data: masking for callers without ``customers:pii``, and the data scope.

Every service that returns customer data masks e-mails and phones (and other personal
fields) unless the principal holds ``customers:pii``, and restricts rows to the principal's
data scope (own / team / all) inside its queries — never by filtering after the fact.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    false,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from shared.auth import Principal
from shared.errors import NotFound
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    Envelope,
)
from shared.messaging import Subscriptions

__all__ = [
    "PII_SCOPE",
    "customer_scope_table",
    "data_scope",
    "ensure_customer_visible",
    "follow_customer_scope",
    "mask_email",
    "mask_phone",
    "visible_customers",
]

PII_SCOPE = "customers:pii"


def mask_email(email: str) -> str:
    """``wei.zhang@example.com`` → ``w***@example.com``."""
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """``+8613812345678`` → ``+86*******5678`` (country code and last four kept)."""
    digits = phone.lstrip("+")
    if len(digits) <= 6:
        return "*" * len(phone)
    head = "+" + digits[:2] if phone.startswith("+") else digits[:2]
    return head + "*" * (len(digits) - 6) + digits[-4:]


def data_scope(
    principal: Principal,
    owner: QueryableAttribute[Any] | ColumnElement[Any],
    team: QueryableAttribute[Any] | ColumnElement[Any],
) -> ColumnElement[bool]:
    """The WHERE clause limiting rows to what ``principal`` may see."""
    if principal.scope_mode == "all":
        return true()
    if principal.scope_mode == "team":
        return team == principal.team if principal.team else false()
    return owner == principal.subject


def customer_scope_table(metadata: MetaData) -> Table:
    """Who owns each customer, as this part learned from customer events.

    Parts other than customer360 keep this small projection so they can apply the data scope
    to their own rows (``WHERE customer_id IN (…visible…)``) without asking customer360.
    """
    return Table(
        "customer_scope",
        metadata,
        Column("customer_id", Uuid, primary_key=True),
        Column("owner_id", String(200), index=True),
        Column("team_id", String(100), index=True),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def visible_customers(
    principal: Principal, customer_id: QueryableAttribute[Any] | ColumnElement[Any], scope: Table
) -> ColumnElement[bool]:
    """The WHERE clause limiting rows keyed by ``customer_id`` to the principal's scope."""
    if principal.scope_mode == "all":
        return true()
    return customer_id.in_(
        select(scope.c.customer_id).where(data_scope(principal, scope.c.owner_id, scope.c.team_id))
    )


async def ensure_customer_visible(
    session: AsyncSession, principal: Principal, customer_id: Any, scope: Table
) -> None:
    """404 (not 403: existence is not revealed) unless ``customer_id`` is within the
    principal's data scope, as ``scope`` knows it — for writes that attach a new record to a
    customer (an order, a ticket…), which no row-level filter guards.

    A scoped caller's customer created moments ago is refused until its
    ``customer.created`` event has reached ``scope``; ``all`` is never refused here."""
    if principal.scope_mode == "all":
        return
    visible = await session.scalar(
        select(visible_customers(principal, scope.c.customer_id, scope))
        .select_from(scope)
        .where(scope.c.customer_id == customer_id)
    )
    if not visible:
        raise NotFound(f"customer {customer_id} does not exist")


def follow_customer_scope(subscriptions: Subscriptions, scope: Table) -> None:
    """Keep ``scope`` up to date from customer events (created, owner changes, merge, erase)."""

    async def upsert(session: AsyncSession, customer_id: Any, values: dict[str, Any]) -> None:
        statement = insert(scope).values(customer_id=customer_id, **values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[scope.c.customer_id], set_={**values, "updated_at": func.now()}
            )
        )

    async def created(session: AsyncSession, event: CustomerCreated, _: Envelope) -> None:
        await upsert(
            session, event.customer_id, {"owner_id": event.owner_id, "team_id": event.team_id}
        )

    async def updated(session: AsyncSession, event: CustomerUpdated, _: Envelope) -> None:
        values: dict[str, Any] = {
            k: event.changes[k] for k in ("owner_id", "team_id") if k in event.changes
        }
        if values:
            await upsert(session, event.customer_id, values)

    async def gone(
        session: AsyncSession, event: CustomerMerged | CustomerErased, _: Envelope
    ) -> None:
        removed = event.merged_id if isinstance(event, CustomerMerged) else event.customer_id
        await session.execute(delete(scope).where(scope.c.customer_id == removed))

    subscriptions.on(CustomerCreated)(created)
    subscriptions.on(CustomerUpdated)(updated)
    subscriptions.on(CustomerMerged)(gone)
    subscriptions.on(CustomerErased)(gone)
