"""SQL of the sales pipeline: stages, deals and their history, and the figures over them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Date, Numeric, and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Deal, DealStageChange, Order, PipelineStage

_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"


def violated(exc: IntegrityError) -> tuple[str | None, str | None]:
    """(sqlstate, constraint name) of an integrity error raised by asyncpg."""
    orig = exc.orig
    driver_error = orig.__cause__ if orig is not None else None
    return getattr(orig, "sqlstate", None), getattr(driver_error, "constraint_name", None)


class DealRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- stages -------------------------------------------------------------------------
    async def stages(self) -> list[PipelineStage]:
        return list(
            await self.session.scalars(
                select(PipelineStage).order_by(PipelineStage.position, PipelineStage.name)
            )
        )

    async def stage(self, stage_id: UUID) -> PipelineStage | None:
        return await self.session.get(PipelineStage, stage_id)

    async def stage_in_use(self, stage_id: UUID) -> bool:
        used = select(Deal.id).where(Deal.stage_id == stage_id).limit(1)
        moved = (
            select(DealStageChange.id)
            .where(
                (DealStageChange.to_stage_id == stage_id)
                | (DealStageChange.from_stage_id == stage_id)
            )
            .limit(1)
        )
        return (await self.session.scalar(used)) is not None or (
            await self.session.scalar(moved)
        ) is not None

    # --- deals --------------------------------------------------------------------------
    async def get(self, deal_id: UUID, *, lock: bool = False) -> Deal | None:
        statement = select(Deal).where(Deal.id == deal_id)
        if lock:
            statement = statement.with_for_update()
        return await self.session.scalar(statement)

    async def history(self, deal_id: UUID) -> list[DealStageChange]:
        return list(
            await self.session.scalars(
                select(DealStageChange)
                .where(DealStageChange.deal_id == deal_id)
                .order_by(DealStageChange.id)
            )
        )

    # --- figures ------------------------------------------------------------------------
    async def open_by_stage(
        self, currency: str, visible: ColumnElement[bool], owner_id: str | None
    ) -> dict[UUID, tuple[int, Decimal]]:
        conditions = [Deal.status == "open", Deal.currency == currency, visible]
        if owner_id is not None:
            conditions.append(Deal.owner_id == owner_id)
        rows = await self.session.execute(
            select(Deal.stage_id, func.count(), func.sum(Deal.amount))
            .where(*conditions)
            .group_by(Deal.stage_id)
        )
        return {stage: (count, amount) for stage, count, amount in rows}

    async def by_owner(
        self,
        currency: str,
        visible: ColumnElement[bool],
        owner_id: str | None,
        closed_after: datetime | None,
        closed_before: datetime | None,
    ) -> Sequence[Any]:
        """Per owner: open count/amount, won count/amount, lost count, mean won cycle (s).

        ``closed_after``/``closed_before`` limit the won and lost deals counted (a quarter's
        results); open deals are counted whatever their dates."""
        closed_in: list[ColumnElement[bool]] = []
        if closed_after is not None:
            closed_in.append(Deal.closed_at >= closed_after)
        if closed_before is not None:
            closed_in.append(Deal.closed_at < closed_before)
        won = and_(Deal.status == "won", *closed_in)
        lost = and_(Deal.status == "lost", *closed_in)
        is_open = Deal.status == "open"
        zero = Decimal(0)
        conditions = [Deal.currency == currency, visible]
        if owner_id is not None:
            conditions.append(Deal.owner_id == owner_id)
        cycle = func.extract("epoch", Deal.closed_at - Deal.created_at)
        rows = await self.session.execute(
            select(
                Deal.owner_id,
                func.count().filter(is_open),
                func.coalesce(func.sum(Deal.amount).filter(is_open), zero),
                func.count().filter(won),
                func.coalesce(func.sum(Deal.amount).filter(won), zero),
                func.count().filter(lost),
                func.avg(case((won, cycle))).cast(Numeric),
            )
            .where(*conditions)
            .group_by(Deal.owner_id)
            .order_by(Deal.owner_id)
        )
        return list(rows)

    async def pipeline_by_month(self, currency: str, visible: ColumnElement[bool]) -> Sequence[Any]:
        """Open deals by expected close month: (month start or None, count, amount, weighted)."""
        month = func.date_trunc("month", Deal.expected_close_date).cast(Date)
        rows = await self.session.execute(
            select(
                month,
                func.count(),
                func.sum(Deal.amount),
                func.sum(Deal.amount * PipelineStage.probability),
            )
            .join(PipelineStage, PipelineStage.id == Deal.stage_id)
            .where(Deal.status == "open", Deal.currency == currency, visible)
            .group_by(month)
            .order_by(month.asc().nulls_last())
        )
        return list(rows)

    async def revenue_by_month(self, currency: str, start: date, end: date) -> dict[date, Decimal]:
        """Net revenue (paid - refunded) of orders placed in [start, end), by month start."""
        month = func.date_trunc("month", func.timezone("UTC", Order.placed_at)).cast(Date)
        rows = await self.session.execute(
            select(month, func.sum(Order.paid_total - Order.refunded_total))
            .where(
                Order.currency == currency,
                func.timezone("UTC", Order.placed_at) >= start,
                func.timezone("UTC", Order.placed_at) < end,
            )
            .group_by(month)
        )
        return {row[0]: row[1] for row in rows}
