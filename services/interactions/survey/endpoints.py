from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from services.interactions.models import SurveyResponse
from services.interactions.models.base import Base, customer_scope
from services.interactions.survey.nps import nps_score
from services.interactions.survey.repository import SurveyRepository
from services.interactions.survey.schemas import (
    CsatSummary,
    NpsSummary,
    SurveyResponseCreate,
    SurveyResponseRead,
    SurveySummary,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import UnprocessableEntity, problem_responses
from shared.events import SurveyAnswered
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.messaging import publish
from shared.privacy import ensure_customer_visible

router = APIRouter(prefix="/surveys", tags=["surveys"])

_IDEMPOTENCY = Base.metadata.tables["interactions.idempotency_key"]


@router.post(
    "/responses",
    status_code=status.HTTP_201_CREATED,
    summary="Record a survey answer",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def record_response(
    body: SurveyResponseCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SurveyResponseRead:
    """Record a customer's CSAT (score 1-5) or NPS (score 0-10) answer, optionally about a
    ticket or an order. A score outside the survey's range answers `422` pointing at
    `/body/score`. With an `Idempotency-Key`, a retry returns the first answer. A customer
    outside the caller's data scope is a `404`.

    Publishes `rapport.interaction.survey_answered.v1`."""
    await ensure_customer_visible(session, principal, body.customer_id, customer_scope)
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="record_survey_response",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed()) is not None:
        return replayed  # type: ignore[return-value]
    row = await SurveyRepository(session).add(
        SurveyResponse(
            customer_id=body.customer_id,
            survey=body.survey,
            score=body.score,
            ticket_id=body.ticket_id,
            order_id=body.order_id,
            comment=body.comment,
            answered_at=body.answered_at or datetime.now(UTC),
        )
    )
    await publish(
        session,
        SurveyAnswered(
            customer_id=row.customer_id,
            response_id=row.id,
            survey=body.survey,
            score=row.score,
            ticket_id=row.ticket_id,
            order_id=row.order_id,
            answered_at=row.answered_at,
        ),
    )
    read = SurveyResponseRead.for_principal(row, principal)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    return read


@router.get(
    "/summary",
    summary="CSAT and NPS figures",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403, 422),
)
async def survey_summary(
    session: SessionDep,
    principal: PrincipalDep,
    customer_id: Annotated[
        UUID | None, Query(description="One customer; leave out for everyone in your scope.")
    ] = None,
    since: Annotated[datetime | None, Query(description="Answered at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Answered before.")] = None,
) -> SurveySummary:
    """Over the answers in `[since, until)`: the CSAT average and count, and the NPS
    (% promoters 9-10 minus % detractors 0-6, from -100 to 100) with its counts."""
    errors = []
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            errors.append({"pointer": f"/query/{name}", "detail": "needs a UTC offset"})
    if since and until and since.tzinfo and until.tzinfo and since >= until:
        errors.append({"pointer": "/query/until", "detail": "must be after since"})
    if errors:
        raise UnprocessableEntity("invalid time window", errors=errors)
    row = await SurveyRepository(session).summary(
        principal, customer_id=customer_id, since=since, until=until
    )
    average = row["csat_average"]
    return SurveySummary(
        customer_id=customer_id,
        since=since,
        until=until,
        csat=CsatSummary(
            responses=row["csat_responses"],
            average=None if average is None else round(float(average), 2),
        ),
        nps=NpsSummary(
            responses=row["nps_responses"],
            promoters=row["promoters"],
            passives=row["passives"],
            detractors=row["detractors"],
            score=nps_score(row["promoters"], row["passives"], row["detractors"]),
        ),
    )
