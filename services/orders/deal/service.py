"""The sales pipeline: configurable stages, deals moving through them, and the figures.

A deal is ``open`` in one stage (admin-configured, ordered, each with a win probability)
until it is ``won`` or ``lost``; every move is a history row (who, when) and an event
(``DealStageChanged`` / ``DealWon`` / ``DealLost``), written in one transaction with the
change. A won deal may become an order at once, through the order service (same pricing,
same checks, same ``OrderPlaced`` event).

Money is ``Decimal``; figures are per currency (the caller names one): amounts in different
currencies are never added up.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import ColumnElement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.deal.forecast import holt_linear
from services.orders.deal.repository import (
    _FOREIGN_KEY_VIOLATION,
    _UNIQUE_VIOLATION,
    DealRepository,
    violated,
)
from services.orders.deal.schemas import (
    DealCreate,
    DealUpdate,
    DealWin,
    Forecast,
    MonthAmount,
    OwnerFigures,
    PipelineMonth,
    PipelineSummary,
    StageCreate,
    StageFigures,
    StageUpdate,
)
from services.orders.models import Deal, DealStageChange, PipelineStage
from services.orders.money import fits_currency, minor_units, quantum, round_money
from services.orders.order import service as orders
from services.orders.order.schemas import OrderCreate
from shared.auth import Principal
from shared.errors import Conflict, NotFound, PreconditionFailed, raise_if_invalid
from shared.events.catalog import DealLost, DealStageChanged, DealWon
from shared.messaging import publish

__all__ = [
    "CurrencyMismatch",
    "DealClosed",
    "StageInUse",
    "StageNameTaken",
    "create_deal",
    "create_stage",
    "delete_stage",
    "forecast",
    "lose_deal",
    "move_deal",
    "summary",
    "update_deal",
    "update_stage",
    "win_deal",
]


class StageNameTaken(Conflict):
    slug = "pipeline-stage-name-taken"


class StageInUse(Conflict):
    slug = "pipeline-stage-in-use"


class DealClosed(Conflict):
    slug = "deal-closed"


class CurrencyMismatch(Conflict):
    slug = "currency-mismatch"


# --- stages ------------------------------------------------------------------------------
async def _save_stage(session: AsyncSession, stage: PipelineStage) -> PipelineStage:
    try:
        async with session.begin_nested():
            session.add(stage)
            await session.flush()
    except IntegrityError as exc:
        if violated(exc) == (_UNIQUE_VIOLATION, "uq_pipeline_stage_name"):
            raise StageNameTaken(
                f"a stage named {stage.name!r} exists",
                errors=[{"pointer": "/body/name", "detail": "already taken", "code": "unique"}],
            ) from None
        raise
    return stage


async def create_stage(session: AsyncSession, data: StageCreate) -> PipelineStage:
    return await _save_stage(
        session,
        PipelineStage(name=data.name, position=data.position, probability=data.probability),
    )


async def update_stage(
    session: AsyncSession, stage: PipelineStage, data: StageUpdate
) -> PipelineStage:
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise_if_invalid([{"pointer": f"/body/{field}", "detail": "may not be null"}])
        setattr(stage, field, value)
    return await _save_stage(session, stage)


async def delete_stage(session: AsyncSession, stage: PipelineStage) -> None:
    """Only a stage no deal is or was ever in: history must keep naming its stages."""
    if await DealRepository(session).stage_in_use(stage.id):
        raise StageInUse(f"deals are or were in stage {stage.name!r}; move them first")
    try:
        async with session.begin_nested():
            await session.delete(stage)
            await session.flush()
    except IntegrityError as exc:  # a deal moved in meanwhile
        if violated(exc)[0] == _FOREIGN_KEY_VIOLATION:
            raise StageInUse(f"deals are in stage {stage.name!r}") from None
        raise


async def get_stage(session: AsyncSession, stage_id: UUID) -> PipelineStage:
    stage = await DealRepository(session).stage(stage_id)
    if stage is None:
        raise NotFound(f"pipeline stage {stage_id} does not exist")
    return stage


# --- deals -------------------------------------------------------------------------------
def _fits(amount: Decimal, currency: str, pointer: str = "/body/amount") -> None:
    if not fits_currency(amount, currency):
        raise_if_invalid(
            [
                {
                    "pointer": pointer,
                    "detail": f"{currency} has {minor_units(currency)} decimal places",
                }
            ]
        )


async def _record(
    session: AsyncSession,
    deal: Deal,
    stage: PipelineStage,
    principal: Principal,
    *,
    from_stage: UUID | None,
    from_status: str | None,
    now: datetime,
) -> None:
    session.add(
        DealStageChange(
            deal_id=deal.id,
            from_stage_id=from_stage,
            to_stage_id=stage.id,
            from_status=from_status,
            to_status=deal.status,
            changed_by=principal.subject,
            changed_at=now,
        )
    )
    await session.flush()
    if deal.status == "open":
        await publish(
            session,
            DealStageChanged(
                customer_id=deal.customer_id,
                deal_id=deal.id,
                stage_id=stage.id,
                stage_name=stage.name,
                probability=stage.probability,
                previous_stage_id=from_stage,
                amount=deal.amount,
                currency=deal.currency,
                owner_id=deal.owner_id,
                expected_close_date=deal.expected_close_date,
                changed_by=principal.subject,
                changed_at=now,
            ),
        )


async def create_deal(session: AsyncSession, data: DealCreate, principal: Principal) -> Deal:
    _fits(data.amount, data.currency)
    repository = DealRepository(session)
    if data.stage_id is not None:
        stage = await repository.stage(data.stage_id)
        if stage is None:
            raise_if_invalid([{"pointer": "/body/stage_id", "detail": "no such stage"}])
    else:
        stages = await repository.stages()
        if not stages:
            raise Conflict("the pipeline has no stages yet: an admin must create them first")
        stage = stages[0]
    assert stage is not None
    now = datetime.now(UTC)
    deal = Deal(
        customer_id=data.customer_id,
        title=data.title,
        amount=data.amount,
        currency=data.currency,
        owner_id=data.owner_id or principal.subject,
        stage_id=stage.id,
        status="open",
        expected_close_date=data.expected_close_date,
        created_by=principal.subject,
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    await session.flush()
    await _record(session, deal, stage, principal, from_stage=None, from_status=None, now=now)
    return deal


async def get_deal(session: AsyncSession, deal_id: UUID, *, lock: bool = False) -> Deal:
    deal = await DealRepository(session).get(deal_id, lock=lock)
    if deal is None:
        raise NotFound(f"deal {deal_id} does not exist")
    return deal


def _check_version(deal: Deal, if_match: str | None) -> None:
    if if_match is not None and if_match.strip('W/"') != str(deal.version):
        raise PreconditionFailed(
            f"the deal changed (version {deal.version}); reload it", version=deal.version
        )


def _ensure_open(deal: Deal) -> None:
    if deal.status != "open":
        raise DealClosed(f"the deal is {deal.status}; closed deals do not change")


async def update_deal(
    session: AsyncSession, deal: Deal, data: DealUpdate, if_match: str | None
) -> Deal:
    _check_version(deal, if_match)
    _ensure_open(deal)
    changes = data.model_dump(exclude_unset=True)
    for field in ("title", "amount", "currency", "owner_id"):
        if field in changes and changes[field] is None:
            raise_if_invalid([{"pointer": f"/body/{field}", "detail": "may not be null"}])
    _fits(changes.get("amount", deal.amount), changes.get("currency", deal.currency))
    for field, value in changes.items():
        setattr(deal, field, value)
    deal.updated_at = datetime.now(UTC)
    await session.flush()
    return deal


async def move_deal(
    session: AsyncSession, deal: Deal, stage_id: UUID, principal: Principal
) -> Deal:
    _ensure_open(deal)
    stage = await DealRepository(session).stage(stage_id)
    if stage is None:
        raise_if_invalid([{"pointer": "/body/stage_id", "detail": "no such stage"}])
    assert stage is not None
    if stage.id == deal.stage_id:
        return deal
    previous, now = deal.stage_id, datetime.now(UTC)
    deal.stage_id, deal.updated_at = stage.id, now
    await session.flush()
    await _record(session, deal, stage, principal, from_stage=previous, from_status="open", now=now)
    return deal


async def win_deal(session: AsyncSession, deal: Deal, data: DealWin, principal: Principal) -> Deal:
    """Won; with ``order``, the deal's order is placed in the same transaction."""
    _ensure_open(deal)
    if data.order is not None:
        if data.order.currency is not None and data.order.currency != deal.currency:
            raise CurrencyMismatch(
                f"the deal is in {deal.currency}, the order in {data.order.currency}",
                errors=[{"pointer": "/body/order/currency", "detail": f"must be {deal.currency}"}],
            )
        order = await orders.create_order(
            session,
            OrderCreate(
                customer_id=deal.customer_id,
                currency=deal.currency,
                channel=data.order.channel,
                lines=data.order.lines,
                note=f"from deal {deal.id}",
            ),
            principal,
        )
        deal.order_id = order.id
    stage = await get_stage(session, deal.stage_id)
    now = datetime.now(UTC)
    deal.status, deal.closed_at, deal.updated_at = "won", now, now
    await session.flush()
    await _record(session, deal, stage, principal, from_stage=stage.id, from_status="open", now=now)
    await publish(
        session,
        DealWon(
            customer_id=deal.customer_id,
            deal_id=deal.id,
            amount=deal.amount,
            currency=deal.currency,
            owner_id=deal.owner_id,
            stage_id=stage.id,
            opened_at=deal.created_at,
            won_at=now,
            order_id=deal.order_id,
        ),
    )
    return deal


async def lose_deal(
    session: AsyncSession, deal: Deal, reason: str | None, principal: Principal
) -> Deal:
    _ensure_open(deal)
    stage = await get_stage(session, deal.stage_id)
    now = datetime.now(UTC)
    deal.status, deal.closed_at, deal.updated_at = "lost", now, now
    deal.lost_reason = reason
    await session.flush()
    await _record(session, deal, stage, principal, from_stage=stage.id, from_status="open", now=now)
    await publish(
        session,
        DealLost(
            customer_id=deal.customer_id,
            deal_id=deal.id,
            amount=deal.amount,
            currency=deal.currency,
            owner_id=deal.owner_id,
            stage_id=stage.id,
            opened_at=deal.created_at,
            lost_at=now,
            reason=reason,
        ),
    )
    return deal


# --- figures -----------------------------------------------------------------------------
async def summary(
    session: AsyncSession,
    currency: str,
    visible: ColumnElement[bool],
    *,
    owner_id: str | None = None,
    closed_after: datetime | None = None,
    closed_before: datetime | None = None,
) -> PipelineSummary:
    repository = DealRepository(session)
    q = quantum(currency)
    by_stage = await repository.open_by_stage(currency, visible, owner_id)
    stages = []
    for stage in await repository.stages():
        count, amount = by_stage.get(stage.id, (0, Decimal(0)))
        stages.append(
            StageFigures(
                stage_id=stage.id,
                name=stage.name,
                position=stage.position,
                probability=stage.probability,
                deals=count,
                amount=amount.quantize(q),
                weighted=round_money(amount * stage.probability, currency),
            )
        )
    owners = []
    for row in await repository.by_owner(currency, visible, owner_id, closed_after, closed_before):
        owner, open_deals, open_amount, won, won_amount, lost, cycle_s = row
        owners.append(
            OwnerFigures(
                owner_id=owner,
                open_deals=open_deals,
                open_amount=open_amount.quantize(q),
                won=won,
                won_amount=won_amount.quantize(q),
                lost=lost,
                win_rate=(
                    (Decimal(won) / Decimal(won + lost)).quantize(Decimal("0.0001"))
                    if won + lost
                    else None
                ),
                average_cycle_days=(
                    (Decimal(cycle_s) / 86400).quantize(Decimal("0.01"))
                    if cycle_s is not None
                    else None
                ),
            )
        )
    return PipelineSummary(
        currency=currency,
        stages=stages,
        open_deals=sum(s.deals for s in stages),
        open_amount=sum((s.amount for s in stages), Decimal(0)),
        weighted_amount=sum((s.weighted for s in stages), Decimal(0)),
        owners=owners,
    )


def _add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


async def forecast(
    session: AsyncSession,
    currency: str,
    visible: ColumnElement[bool],
    *,
    as_of: date,
    months: int,
    history_months: int,
    alpha: Decimal,
    beta: Decimal,
) -> Forecast:
    """Weighted pipeline by expected close month, and Holt's forecast of net revenue for the
    ``months`` after ``as_of``'s month from the ``history_months`` complete months before it.

    Revenue history covers every order (a company figure, not the caller's data scope);
    the pipeline part is limited to the deals the caller may see."""
    repository = DealRepository(session)
    this_month = as_of.replace(day=1)
    start = _add_months(this_month, -history_months)
    revenue = await repository.revenue_by_month(currency, start, this_month)
    q = quantum(currency)
    series: list[tuple[date, Decimal]] = []
    for i in range(history_months):
        month = _add_months(start, i)
        if series or month in revenue:  # from the first month with orders
            series.append((month, revenue.get(month, Decimal(0)).quantize(q)))
    fit = holt_linear([v for _, v in series], months, alpha=alpha, beta=beta)
    pipeline = [
        PipelineMonth(
            month=_label(month) if month is not None else None,
            deals=count,
            amount=amount.quantize(q),
            weighted=round_money(weighted, currency),
        )
        for month, count, amount, weighted in await repository.pipeline_by_month(currency, visible)
    ]
    return Forecast(
        currency=currency,
        as_of=as_of,
        alpha=alpha,
        beta=beta,
        history=[MonthAmount(month=_label(m), revenue=v) for m, v in series],
        revenue_forecast=[
            MonthAmount(month=_label(_add_months(this_month, h)), revenue=round_money(v, currency))
            for h, v in enumerate(fit.forecast)
        ],
        pipeline=pipeline,
    )
