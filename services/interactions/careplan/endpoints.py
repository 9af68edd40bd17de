from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Response, status

from services.interactions.careplan.repository import RuleRepository
from services.interactions.careplan.schemas import RULE_EXAMPLES, RuleRead, RuleType, RuleWrite
from services.interactions.models import CarePlanRule
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import NotFound, PreconditionFailed, problem_responses
from shared.etag import ETAG_RESPONSE, IfMatch
from shared.pagination import CursorDep, CursorPage

router = APIRouter(prefix="/care-plans", tags=["care plans"])

_PARAMETERS = ("every_days", "days_after", "csat_threshold", "dates")
RuleBody = Annotated[RuleWrite, Body(openapi_examples=RULE_EXAMPLES)]


def _now() -> datetime:
    return datetime.now(UTC)


def _etag(rule: CarePlanRule) -> str:
    return f'"{rule.version}"'


def _apply(rule: CarePlanRule, body: Any) -> None:
    """Every column from the body; parameters another type would use are cleared."""
    values = body.model_dump()
    for name in _PARAMETERS:
        setattr(rule, name, values.pop(name, None))
    for name, value in values.items():
        setattr(rule, name, value)


async def _rule_or_404(rule_id: UUID, session: SessionDep) -> CarePlanRule:
    rule = await RuleRepository(session).get(rule_id)
    if rule is None:
        raise NotFound(f"care-plan rule {rule_id} does not exist")
    return rule


async def _locked_rule_or_404(rule_id: UUID, session: SessionDep) -> CarePlanRule:
    rule = await RuleRepository(session).get(rule_id, lock=True)
    if rule is None:
        raise NotFound(f"care-plan rule {rule_id} does not exist")
    return rule


RuleDep = Annotated[CarePlanRule, Depends(_rule_or_404)]
LockedRuleDep = Annotated[CarePlanRule, Depends(_locked_rule_or_404)]


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    summary="Create a care-plan rule",
    dependencies=[Depends(require_scopes("admin"))],
    responses={201: ETAG_RESPONSE, **problem_responses(401, 403, 413, 422)},
)
async def create_rule(
    body: RuleBody, session: SessionDep, principal: PrincipalDep, response: Response
) -> RuleRead:
    """Admins only. `type` picks the occasion and its parameters:

    - `birthday`: on the customer's birthday (from customer360).
    - `holiday`: on `dates` (`MM-DD` yearly, `YYYY-MM-DD` once).
    - `periodic_revisit`: every `every_days` days for the customers of `segment_id` or
      `lifecycle_stage`, counted from when they entered it.
    - `post_purchase`: `days_after` days after an order.
    - `low_csat`: `days_after` days after a CSAT answer of `csat_threshold` or less.

    Each occasion fires once per customer, on the customer's local date (timezone from
    customer360, else UTC): `action: task` creates a task due at `due_time` local time,
    assigned to the customer's owner or a fixed agent; `action: event` only publishes
    `rapport.interaction.care_plan_triggered.v1`. Occasions before the rule's creation
    never fire. `segment_id` / `lifecycle_stage` narrow any rule type."""
    now = _now()
    rule = CarePlanRule(created_by=principal.subject, created_at=now, updated_at=now, version=1)
    _apply(rule, body)
    rule = await RuleRepository(session).add(rule)
    response.headers["ETag"] = _etag(rule)
    response.headers["Location"] = f"/care-plans/rules/{rule.id}"
    return RuleRead.model_validate(rule)


@router.get(
    "/rules",
    summary="List care-plan rules",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(400, 401, 403, 422),
)
async def list_rules(
    session: SessionDep,
    page: CursorDep,
    type_: Annotated[RuleType | None, Query(alias="type")] = None,
    active: bool | None = None,
) -> CursorPage[RuleRead]:
    """Rules, oldest first, one page at a time (pass `next_cursor` as `cursor`)."""
    items, next_cursor = await RuleRepository(session).find(page, type_=type_, active=active)
    return CursorPage(items=[RuleRead.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get(
    "/rules/{rule_id}",
    summary="Get a care-plan rule",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 422)},
)
async def get_rule(rule: RuleDep, response: Response) -> RuleRead:
    """One rule by id."""
    response.headers["ETag"] = _etag(rule)
    return RuleRead.model_validate(rule)


@router.put(
    "/rules/{rule_id}",
    summary="Replace a care-plan rule",
    dependencies=[Depends(require_scopes("admin"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 412, 422)},
)
async def replace_rule(
    rule: LockedRuleDep,
    body: RuleBody,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> RuleRead:
    """Admins only. Replaces every field (send the whole rule, as on create). Occasions
    already fired stay fired; tasks already created keep their title, assignee and due
    time. Set `active: false` to pause a rule."""
    if if_match is not None and if_match.strip() not in (_etag(rule), "*"):
        raise PreconditionFailed(
            f"the rule changed since you read it (now {_etag(rule)}); read it again",
            current_etag=_etag(rule),
        )
    _apply(rule, body)
    rule.version += 1
    rule.updated_at = _now()
    rule = await RuleRepository(session).flush(rule)
    response.headers["ETag"] = _etag(rule)
    return RuleRead.model_validate(rule)


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a care-plan rule",
    dependencies=[Depends(require_scopes("admin"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_rule(rule: LockedRuleDep, session: SessionDep) -> Response:
    """Admins only. Its tasks stay (with `rule_id` cleared); it fires no more."""
    await RuleRepository(session).delete(rule)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
