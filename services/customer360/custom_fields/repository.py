from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import CustomFieldDefinition


async def definitions(session: AsyncSession) -> dict[str, CustomFieldDefinition]:
    """Every custom-field definition by key (a short admin-managed list)."""
    rows = await session.scalars(select(CustomFieldDefinition).order_by(CustomFieldDefinition.key))
    return {d.key: d for d in rows}
