"""The caller's data scope over customers, as orders knows it (from customer events)."""

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models.base import customer_scope
from shared.auth import Principal
from shared.privacy import ensure_customer_visible, visible_customers


async def is_visible(session: AsyncSession, principal: Principal, customer_id: UUID) -> bool:
    if principal.scope_mode == "all":
        return True
    return bool(
        await session.scalar(
            select(visible_customers(principal, customer_scope.c.customer_id, customer_scope))
            .select_from(customer_scope)
            .where(customer_scope.c.customer_id == customer_id)
        )
    )


async def ensure_visible(session: AsyncSession, principal: Principal, customer_id: UUID) -> None:
    """404 (not 403: existence is not revealed) for a customer outside the caller's scope."""
    await ensure_customer_visible(session, principal, customer_id, customer_scope)
