from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from services.orders.customers import ensure_visible
from services.orders.deal import service
from services.orders.deal.repository import DealRepository
from services.orders.deal.schemas import (
    DealCreate,
    DealLoss,
    DealRead,
    DealStatus,
    DealUpdate,
    DealWin,
    Forecast,
    PipelineSummary,
    StageChangeRead,
    StageCreate,
    StageMove,
    StageRead,
    StageUpdate,
)
from services.orders.models import Deal
from services.orders.models.base import Base, customer_scope
from services.orders.money import CurrencyCode
from shared.auth import Principal, PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage, paginate
from shared.privacy import visible_customers

stages_router = APIRouter(prefix="/pipeline", tags=["pipeline"])
deals_router = APIRouter(prefix="/deals", tags=["deals"])

_IDEMPOTENCY = Base.metadata.tables["orders.idempotency_key"]
_READ = [Depends(require_scopes("orders:read"))]
_WRITE = [Depends(require_scopes("orders:write"))]
_ADMIN = [Depends(require_scopes("orders:write", "admin"))]

CurrencyQuery = Annotated[
    CurrencyCode, Query(description="Figures in this currency; deals in others are left out.")
]


# --- stages (admin) ----------------------------------------------------------------------
@stages_router.get(
    "/stages",
    summary="List pipeline stages",
    dependencies=_READ,
    responses=problem_responses(401, 403),
)
async def list_stages(session: SessionDep) -> list[StageRead]:
    """The stages in pipeline order (by `position`), each with its win probability."""
    return [StageRead.model_validate(s) for s in await DealRepository(session).stages()]


@stages_router.post(
    "/stages",
    status_code=status.HTTP_201_CREATED,
    summary="Create a pipeline stage",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_stage(body: StageCreate, session: SessionDep) -> StageRead:
    """Admins only (`admin` scope). `probability` (`"0.25"`) weights the deals in the stage
    in the summary and the forecast. A taken name answers `409`
    (`/problems/pipeline-stage-name-taken`)."""
    return StageRead.model_validate(await service.create_stage(session, body))


@stages_router.patch(
    "/stages/{stage_id}",
    summary="Rename, reorder or re-weight a stage",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_stage(stage_id: UUID, body: StageUpdate, session: SessionDep) -> StageRead:
    """Admins only. Changing `probability` re-weights the open deals in the stage at once."""
    stage = await service.get_stage(session, stage_id)
    return StageRead.model_validate(await service.update_stage(session, stage, body))


@stages_router.delete(
    "/stages/{stage_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a stage",
    dependencies=_ADMIN,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_stage(stage_id: UUID, session: SessionDep) -> Response:
    """Admins only; only a stage no deal is or ever was in (`409`
    `/problems/pipeline-stage-in-use` otherwise: deal histories keep naming their stages)."""
    await service.delete_stage(session, await service.get_stage(session, stage_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- figures -----------------------------------------------------------------------------
@stages_router.get(
    "/summary",
    summary="Pipeline summary and sales reps' results",
    dependencies=_READ,
    responses=problem_responses(401, 403, 422),
)
async def pipeline_summary(
    session: SessionDep,
    principal: PrincipalDep,
    currency: CurrencyQuery,
    owner_id: str | None = None,
    closed_after: datetime | None = None,
    closed_before: datetime | None = None,
) -> PipelineSummary:
    """Open deals per stage (count, amount, amount x probability) and per owner: open
    deals, won count and amount, lost count, win rate = won / (won + lost), and average
    cycle time (days from creation to winning). `closed_after`/`closed_before` limit the won
    and lost deals to a period (a quarter's results). Only deals in `currency` and within
    the caller's data scope count."""
    return await service.summary(
        session,
        currency,
        visible_customers(principal, Deal.customer_id, customer_scope),
        owner_id=owner_id,
        closed_after=closed_after,
        closed_before=closed_before,
    )


@stages_router.get(
    "/forecast",
    summary="Weighted pipeline and revenue forecast",
    dependencies=_READ,
    responses=problem_responses(401, 403, 422),
)
async def pipeline_forecast(
    session: SessionDep,
    principal: PrincipalDep,
    currency: CurrencyQuery,
    months: Annotated[int, Query(ge=1, le=24, description="Months to forecast.")] = 3,
    history: Annotated[
        int, Query(ge=1, le=60, description="Complete months of order history to learn from.")
    ] = 12,
    alpha: Annotated[Decimal, Query(gt=0, le=1, description="Level smoothing.")] = Decimal("0.5"),
    beta: Annotated[Decimal, Query(gt=0, le=1, description="Trend smoothing.")] = Decimal("0.3"),
    as_of: Annotated[date | None, Query(description="Defaults to today (UTC).")] = None,
) -> Forecast:
    """Two views of what is coming:

    * `pipeline`: open deals by expected close month — count, amount and amount weighted by
      the stage's win probability (deals without a date under `month: null`).
    * `revenue_forecast`: net revenue (paid - refunded, by month the order was placed) for
      the current month and the `months - 1` after it, by **Holt's linear trend method**
      (double exponential smoothing) fitted on the `history` complete months before the
      current one, starting at the first month with orders: `level_t = alpha*y_t + (1-alpha)*(level
      + trend)`, `trend_t = beta*(level_t - level_{t-1}) + (1-beta)*trend`, forecast `level + h*trend`
      (never below zero)."""
    return await service.forecast(
        session,
        currency,
        visible_customers(principal, Deal.customer_id, customer_scope),
        as_of=as_of or datetime.now(UTC).date(),
        months=months,
        history_months=history,
        alpha=alpha,
        beta=beta,
    )


# --- deals -------------------------------------------------------------------------------
async def _visible_deal(
    session: SessionDep, deal_id: UUID, principal: Principal, *, lock: bool = False
) -> Deal:
    deal = await service.get_deal(session, deal_id, lock=lock)
    await ensure_visible(session, principal, deal.customer_id)
    return deal


def _etag(deal: Deal, response: Response) -> DealRead:
    response.headers["ETag"] = f'"{deal.version}"'
    return DealRead.model_validate(deal)


@deals_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Open a deal",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_deal(
    body: DealCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> DealRead:
    """A deal in the first stage (or `stage_id`), owned by the caller (or `owner_id`).
    `amount` is a decimal string that must fit the currency's minor unit. `409` if the
    pipeline has no stages yet. With an `Idempotency-Key`, a retry returns the first answer.
    Publishes `rapport.order.deal_stage_changed.v1`."""
    await ensure_visible(session, principal, body.customer_id)
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="create_deal",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed()) is not None:
        return replayed  # type: ignore[return-value]
    deal = await service.create_deal(session, body, principal)
    read = _etag(deal, response)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    response.headers["Location"] = f"/deals/{deal.id}"
    return read


@deals_router.get(
    "", summary="List deals", dependencies=_READ, responses=problem_responses(400, 401, 403)
)
async def list_deals(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    customer_id: UUID | None = None,
    owner_id: str | None = None,
    stage_id: UUID | None = None,
    status_: Annotated[DealStatus | None, Query(alias="status")] = None,
) -> CursorPage[DealRead]:
    """Deals within the caller's data scope, newest first."""
    statement = select(Deal).where(visible_customers(principal, Deal.customer_id, customer_scope))
    if customer_id is not None:
        statement = statement.where(Deal.customer_id == customer_id)
    if owner_id is not None:
        statement = statement.where(Deal.owner_id == owner_id)
    if stage_id is not None:
        statement = statement.where(Deal.stage_id == stage_id)
    if status_ is not None:
        statement = statement.where(Deal.status == status_)
    items: list[Deal]
    items, next_cursor = await paginate(
        session,
        statement,
        keys=[Deal.created_at, Deal.id],
        key_of=lambda d: (d.created_at, d.id),
        params=page,
        descending=True,
    )
    return CursorPage(items=[DealRead.model_validate(d) for d in items], next_cursor=next_cursor)


@deals_router.get(
    "/{deal_id}",
    summary="Get a deal",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404),
)
async def get_deal(
    deal_id: UUID, session: SessionDep, principal: PrincipalDep, response: Response
) -> DealRead:
    """One deal; its `ETag` is the version to send as `If-Match` with an update."""
    return _etag(await _visible_deal(session, deal_id, principal), response)


@deals_router.patch(
    "/{deal_id}",
    summary="Edit a deal",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_deal(
    deal_id: UUID,
    body: DealUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> DealRead:
    """Change title, amount, currency, owner or expected close date of an open deal
    (`409` once won or lost). With `If-Match`, a deal changed since you read it answers
    `412`."""
    deal = await _visible_deal(session, deal_id, principal, lock=True)
    return _etag(await service.update_deal(session, deal, body, if_match), response)


@deals_router.post(
    "/{deal_id}/stage",
    summary="Move a deal to another stage",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def move_deal(
    deal_id: UUID,
    body: StageMove,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
) -> DealRead:
    """Any stage, forwards or back; recorded in the history with who and when. Publishes
    `rapport.order.deal_stage_changed.v1`. `409` for a won or lost deal."""
    deal = await _visible_deal(session, deal_id, principal, lock=True)
    return _etag(await service.move_deal(session, deal, body.stage_id, principal), response)


@deals_router.post(
    "/{deal_id}/won",
    summary="Mark a deal won (and place its order)",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def win_deal(
    deal_id: UUID,
    body: DealWin,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
) -> DealRead:
    """Closes the deal as won. With `order`, the order is placed too (same rules as
    `POST /orders`, in the deal's currency and for its customer; `order_id` links it);
    an order `currency` other than the deal's answers `409` (`/problems/currency-mismatch`),
    products priced in another currency `422`. Publishes `rapport.order.deal_won.v1`."""
    deal = await _visible_deal(session, deal_id, principal, lock=True)
    return _etag(await service.win_deal(session, deal, body, principal), response)


@deals_router.post(
    "/{deal_id}/lost",
    summary="Mark a deal lost",
    dependencies=_WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def lose_deal(
    deal_id: UUID,
    body: DealLoss,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
) -> DealRead:
    """Closes the deal as lost, with an optional reason. Publishes
    `rapport.order.deal_lost.v1`."""
    deal = await _visible_deal(session, deal_id, principal, lock=True)
    return _etag(await service.lose_deal(session, deal, body.reason, principal), response)


@deals_router.get(
    "/{deal_id}/history",
    summary="A deal's stage history",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404),
)
async def deal_history(
    deal_id: UUID, session: SessionDep, principal: PrincipalDep
) -> list[StageChangeRead]:
    """Every move, oldest first: creation (no `from_stage_id`), stage changes, and the
    close (`to_status` won or lost), each with who and when."""
    deal = await _visible_deal(session, deal_id, principal)
    return [
        StageChangeRead.model_validate(c) for c in await DealRepository(session).history(deal.id)
    ]
