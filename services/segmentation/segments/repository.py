from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.models import Segment, SegmentMember, customer_scope
from services.segmentation.rules.compile import FEATURES
from shared.auth import Principal
from shared.db import driver_connection
from shared.errors import UnprocessableEntity
from shared.pagination import CursorParams, paginate
from shared.privacy import visible_customers

#: A preview may not run longer than this (it answers 422 instead).
PREVIEW_TIMEOUT_MS = 5_000


class SegmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, segment_id: UUID, *, lock: bool = False) -> Segment | None:
        return await self.session.get(Segment, segment_id, with_for_update=lock)

    async def page(self, params: CursorParams) -> tuple[list[Segment], str | None]:
        return await paginate(
            self.session,
            select(Segment),
            keys=[Segment.created_at, Segment.id],
            key_of=lambda s: (s.created_at, s.id),
            params=params,
            descending=True,
        )

    async def member_count(self, segment_id: UUID, principal: Principal) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    SegmentMember.segment_id == segment_id,
                    visible_customers(principal, SegmentMember.customer_id, customer_scope),
                )
            )
            or 0
        )

    def _members(self, segment_id: UUID, principal: Principal) -> Select[Any]:
        return select(SegmentMember).where(
            SegmentMember.segment_id == segment_id,
            visible_customers(principal, SegmentMember.customer_id, customer_scope),
        )

    async def members(
        self, segment_id: UUID, principal: Principal, params: CursorParams
    ) -> tuple[list[SegmentMember], str | None]:
        return await paginate(
            self.session,
            self._members(segment_id, principal),
            keys=[SegmentMember.customer_id],
            key_of=lambda m: (m.customer_id,),
            params=params,
        )

    async def members_after(
        self, segment_id: UUID, principal: Principal, after: UUID | None, batch: int = 2_000
    ) -> list[SegmentMember]:
        """The next ``batch`` visible members after customer ``after``, in id order."""
        statement = self._members(segment_id, principal)
        if after is not None:
            statement = statement.where(SegmentMember.customer_id > after)
        return list(
            (
                await self.session.scalars(
                    statement.order_by(SegmentMember.customer_id).limit(batch)
                )
            ).all()
        )

    async def customer_segments(
        self, customer_id: UUID, principal: Principal
    ) -> list[tuple[SegmentMember, Segment]]:
        rows = await self.session.execute(
            select(SegmentMember, Segment)
            .join(Segment, Segment.id == SegmentMember.segment_id)
            .where(
                SegmentMember.customer_id == customer_id,
                visible_customers(principal, SegmentMember.customer_id, customer_scope),
            )
            .order_by(Segment.name, Segment.id)
        )
        return [(m, s) for m, s in rows]

    async def add_members(
        self, segment_id: UUID, customer_ids: Sequence[UUID], version: int, now: datetime
    ) -> list[UUID]:
        """Add whoever is not in yet; returns them. One array parameter, whatever the count."""
        if not customer_ids:
            return []
        driver = await driver_connection(self.session)
        rows = await driver.fetch(
            "INSERT INTO segmentation.segment_member (segment_id, customer_id, version, "
            "entered_at) SELECT $1::uuid, c, $3::int, $4::timestamptz "
            "FROM unnest($2::uuid[]) AS c ON CONFLICT DO NOTHING RETURNING customer_id",
            segment_id,
            list(dict.fromkeys(customer_ids)),
            version,
            now,
        )
        return [r["customer_id"] for r in rows]

    async def remove_members(self, segment_id: UUID, customer_ids: Sequence[UUID]) -> list[UUID]:
        if not customer_ids:
            return []
        driver = await driver_connection(self.session)
        rows = await driver.fetch(
            "DELETE FROM segmentation.segment_member WHERE segment_id = $1 "
            "AND customer_id = ANY($2::uuid[]) RETURNING customer_id",
            segment_id,
            list(customer_ids),
        )
        return [r["customer_id"] for r in rows]

    async def all_members(self, segment_id: UUID) -> list[UUID]:
        return list(
            (
                await self.session.scalars(
                    select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)
                )
            ).all()
        )

    async def preview(
        self, rule_sql: str, principal: Principal, now: datetime, sample_size: int
    ) -> tuple[int, list[UUID]]:
        """Count and sample what ``rule_sql`` selects, bounded by a statement timeout."""
        driver = await driver_connection(self.session)
        scope, args = "", []
        if principal.scope_mode == "own":
            scope, args = " AND s.owner_id = $2", [principal.subject]
        elif principal.scope_mode == "team":
            scope, args = " AND s.team_id = $2", [principal.team or ""]
        visible = (
            ""
            if principal.scope_mode == "all"
            else " AND f.customer_id IN (SELECT s.customer_id FROM segmentation.customer_scope s"
            f" WHERE TRUE{scope})"
        )
        # $1 (now) is typed here too: a rule without time conditions does not mention it.
        where = f"FROM {FEATURES} f WHERE $1::timestamptz IS NOT NULL AND {rule_sql}{visible}"
        await driver.execute(f"SET LOCAL statement_timeout = {PREVIEW_TIMEOUT_MS}")
        try:
            count = await driver.fetchval(f"SELECT count(*) {where}", now, *args)
            sample = await driver.fetch(
                f"SELECT f.customer_id {where} ORDER BY f.customer_id LIMIT {int(sample_size)}",
                now,
                *args,
            )
        except asyncpg.QueryCanceledError:
            raise UnprocessableEntity(
                f"the rule takes longer than {PREVIEW_TIMEOUT_MS // 1000} s to count: narrow it",
                errors=[
                    {"pointer": "/body/rule", "detail": "too expensive", "code": "too-expensive"}
                ],
            ) from None
        await driver.execute("SET LOCAL statement_timeout TO DEFAULT")
        return int(count), [r["customer_id"] for r in sample]
