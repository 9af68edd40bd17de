import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from services.segmentation.analytics.dependencies import ClockDep, PolicyDep
from services.segmentation.analytics.repository import AnalyticsRepository
from services.segmentation.analytics.schemas import (
    CustomerScoresRead,
    PassRead,
    RecomputeRead,
    RfmGroupCount,
    RfmSummary,
)
from services.segmentation.analytics.scoring import RFM_GROUPS, RFM_LABELS
from services.segmentation.analytics.service import Recompute, RecomputeResult
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import Conflict, NotFound, problem_responses

router = APIRouter(tags=["analytics"])

_READ = [Depends(require_scopes("segments:read"))]


@router.get(
    "/customers/{customer_id}/scores",
    summary="Get a customer's RFM, lifecycle stage, CLV and churn risk",
    dependencies=_READ,
    responses=problem_responses(401, 403, 404),
)
async def get_customer_scores(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep
) -> CustomerScoresRead:
    """The analytics segmentation keeps for one customer, from their order events.

    - **R, F, M** (1-5): quintiles against every customer with orders — R by the date of
      the last order (5 = most recent fifth), F by the number of orders that count (not
      cancelled or refunded), M by net paid in the customer's main currency (the one most
      of their orders are in), among customers with the same main currency. Ties share a
      score. The boundaries are recomputed periodically (`boundaries_computed_at`).
    - **rfm_segment**: champions, loyal, potential_loyalist, new, promising,
      need_attention, about_to_sleep, at_risk, cant_lose_them, hibernating or lost, from R
      and F.
    - **lifecycle_stage**: prospect (no orders), first_time, repeat, loyal, at_risk,
      churned — by days since the last order and order count (thresholds are settings).
    - **churn_risk** (0-1): 0 until the customer's own usual interval between orders has
      passed since their last one, rising linearly to 1 at three intervals.
    - **historical_clv** per currency and **predicted_clv** in `clv_currency`.

    Scores follow each order event within about a second. A customer known from a customer
    event but without orders answers as a `prospect` with empty scores; `404` means neither
    has been seen (or the customer is outside your data scope).
    """
    repo = AnalyticsRepository(session)
    row = await repo.get_scores(customer_id, principal)
    _, computed_at = await repo.boundaries()
    if row is not None:
        read = CustomerScoresRead.model_validate(row)
        return read.model_copy(update={"boundaries_computed_at": computed_at})
    if not await repo.known_customer(customer_id, principal):
        raise NotFound(f"no scores for customer {customer_id} yet")
    return CustomerScoresRead(
        customer_id=customer_id,
        recency=None,
        frequency=None,
        monetary=None,
        rfm_segment=None,
        lifecycle_stage="prospect",
        order_count=0,
        first_order_at=None,
        last_order_at=None,
        historical_clv={},
        predicted_clv=None,
        clv_currency=None,
        churn_risk=None,
        scored_at=None,
        boundaries_computed_at=computed_at,
    )


@router.get(
    "/analytics/rfm",
    summary="Count customers per named RFM group",
    dependencies=_READ,
    responses=problem_responses(401, 403),
)
async def get_rfm_summary(session: SessionDep, principal: PrincipalDep) -> RfmSummary:
    """How many customers with orders are in each of the eleven named RFM groups (within
    your data scope), best group first, zeros included. As fresh as the customers' scores:
    see `GET /customers/{customer_id}/scores`."""
    repo = AnalyticsRepository(session)
    counts, unscored = await repo.group_counts(principal)
    _, computed_at = await repo.boundaries()
    groups = [
        RfmGroupCount(group=g, label=RFM_LABELS[g], customers=counts.get(g, 0)) for g in RFM_GROUPS
    ]
    latest = await repo.latest_pass()
    return RfmSummary(
        groups=groups,
        scored_customers=sum(g.customers for g in groups),
        unscored_customers=unscored,
        boundaries_computed_at=computed_at,
        last_pass=PassRead.model_validate(latest) if latest is not None else None,
    )


@router.post(
    "/analytics:recompute",
    summary="Recompute RFM boundaries and rescore every customer (admin)",
    status_code=202,
    dependencies=[Depends(require_scopes("admin"))],
    responses={
        200: {"model": RecomputeRead, "description": "The pass ran (`wait=true`)."},
        **problem_responses(401, 403, 409),
    },
)
async def recompute(
    request: Request,
    response: Response,
    now: ClockDep,
    policy: PolicyDep,
    wait: Annotated[
        bool,
        Query(description="Run the pass before answering (small populations, scripts)."),
    ] = False,
) -> RecomputeRead:
    """Run the batch pass now instead of waiting for the scheduler: new quintile boundaries
    from the whole population, then every customer with orders rescored in bounded batches
    (one transaction each), publishing `CustomerScored` only for customers whose scores
    changed. Requires the `admin` scope.

    By default the pass runs in the background of the replica that took the request and
    the answer is `202` at once (a pass over a million customers takes minutes): it is done
    when `last_pass` in `GET /analytics/rfm` started at or after `accepted_at` and has a
    `finished_at`. `wait=true` runs it before answering `200` with the figures (for small
    populations and scripts: mind the gateway's upstream timeout). `409`: a pass requested
    earlier is still running on this replica.
    """
    state = request.app.state
    running: asyncio.Task[RecomputeResult] | None = getattr(state, "analytics_pass", None)
    if running is not None and not running.done():
        raise Conflict("a recompute requested earlier is still running")
    settings = state.settings
    accepted_at = now()
    job = Recompute(
        state.database,
        policy,
        now=now,
        batch_size=settings.analytics_batch_size,
        interval_s=settings.analytics_recompute_interval_s,
    ).run_once()
    if not wait:
        state.analytics_pass = asyncio.create_task(job, name="analytics-recompute")
        return RecomputeRead(state="accepted", accepted_at=accepted_at)
    result = await job
    response.status_code = 200
    return RecomputeRead(
        state="done",
        accepted_at=accepted_at,
        computed_at=result.computed_at,
        population=result.population,
        customers_rescored=result.customers_rescored,
        scores_published=result.scores_published,
    )
