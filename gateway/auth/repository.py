"""SQL of the ``gateway.api_key`` table."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ApiKey
from shared.pagination import CursorParams, paginate

__all__ = ["ApiKeyRepository"]


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, api_key_id: UUID) -> ApiKey | None:
        return await self.session.get(ApiKey, api_key_id)

    async def get_by_key_id(self, key_id: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))

    async def add(self, api_key: ApiKey) -> ApiKey:
        self.session.add(api_key)
        await self.session.flush()
        await self.session.refresh(api_key)
        return api_key

    async def list(self, params: CursorParams) -> tuple[list[ApiKey], str | None]:
        return await paginate(
            self.session,
            select(ApiKey),
            keys=[ApiKey.created_at, ApiKey.id],
            key_of=lambda k: (k.created_at, k.id),
            params=params,
        )

    async def touch(self, api_key_id: UUID, *, now: datetime, min_interval: timedelta) -> bool:
        """Set ``last_used_at`` unless it was set less than ``min_interval`` ago (by any
        gateway replica): at most one write per key and interval. True if it wrote."""
        result = await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == api_key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - min_interval),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))
