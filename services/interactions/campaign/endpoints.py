from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status

from services.interactions.campaign import service
from services.interactions.campaign.repository import CampaignRepository
from services.interactions.campaign.schemas import (
    CAMPAIGN_EXAMPLES,
    CampaignRead,
    CampaignReport,
    CampaignStatus,
    CampaignWrite,
    Preview,
    PreviewRequest,
    StartResult,
)
from services.interactions.models import Campaign
from services.interactions.models.base import Base, customer_scope
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound, PreconditionFailed, problem_responses
from shared.etag import ETAG_RESPONSE, IfMatch
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage
from shared.privacy import ensure_customer_visible

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

_IDEMPOTENCY = Base.metadata.tables["interactions.idempotency_key"]
_EDITABLE = ("draft", "scheduled")
CampaignBody = Annotated[CampaignWrite, Body(openapi_examples=CAMPAIGN_EXAMPLES)]


def _now() -> datetime:
    return datetime.now(UTC)


def _etag(campaign: Campaign) -> str:
    return f'"{campaign.version}"'


def _apply(campaign: Campaign, body: CampaignWrite) -> None:
    service.check_templates(body.subject, body.body)
    campaign.name = body.name
    campaign.channel = body.channel
    campaign.segment_id = body.segment_id
    campaign.customer_ids = list(dict.fromkeys(body.customer_ids)) if body.customer_ids else None
    campaign.subject_template = body.subject
    campaign.body_template = body.body
    campaign.scheduled_at = body.scheduled_at
    campaign.trigger = body.trigger
    campaign.delay_days = body.delay_days
    campaign.rule_type = body.rule_type
    campaign.every_days = body.recurrence.every_days if body.recurrence else None
    campaign.repeat_until = body.recurrence.until if body.recurrence else None


async def _check_segment(request: Request, body: CampaignWrite) -> None:
    """An unknown segment is a 422 (`unknown-segment`); segmentation down, a 503."""
    if body.segment_id is not None:
        await request.app.state.campaign_segments.check(body.segment_id)


def _check_if_match(campaign: Campaign, if_match: str | None) -> None:
    if if_match is not None and if_match.strip() not in (_etag(campaign), "*"):
        raise PreconditionFailed(
            f"the campaign changed since you read it (now {_etag(campaign)}); read it again",
            current_etag=_etag(campaign),
        )


def _editable(campaign: Campaign, action: str) -> None:
    if campaign.status not in _EDITABLE:
        raise service.CampaignNotEditable(
            f"cannot {action} a campaign that is {campaign.status}", status=campaign.status
        )


async def _campaign_or_404(campaign_id: UUID, session: SessionDep) -> Campaign:
    campaign = await CampaignRepository(session).get(campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


async def _locked_campaign_or_404(campaign_id: UUID, session: SessionDep) -> Campaign:
    campaign = await CampaignRepository(session).get(campaign_id, lock=True)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


CampaignDep = Annotated[Campaign, Depends(_campaign_or_404)]
LockedCampaignDep = Annotated[Campaign, Depends(_locked_campaign_or_404)]


def _whole_base(principal: PrincipalDep) -> None:
    """A campaign messages a whole segment (or a list) and its triggers keep adding
    recipients: only a caller whose data scope is every customer may create, change or start
    one. A caller limited to its own or its team's customers (a sales rep) gets a ``403``;
    it works those customers one by one instead."""
    if principal.scope_mode != "all":
        raise Forbidden(
            f"campaigns reach customers beyond your data scope ({principal.scope_mode}); "
            "creating, changing or starting one needs the data scope 'all'"
        )


#: What every campaign write requires.
_WRITER = [Depends(require_scopes("interactions:write")), Depends(_whole_base)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a campaign (draft)",
    dependencies=_WRITER,
    responses={201: ETAG_RESPONSE, **problem_responses(401, 403, 413, 422, 503)},
)
async def create_campaign(
    body: CampaignBody,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> CampaignRead:
    """A draft campaign: an audience (`segment_id` or `customer_ids`), a channel (`email`,
    `sms` or `webhook`), templates and an optional `scheduled_at`. Templates are checked
    now: a syntax error or an unknown field is a `422` (`invalid-template`) whose `errors`
    give the pointer, `line` and `column`. A `segment_id` segmentation does not know is a
    `422` (`unknown-segment`, pointer `/body/segment_id`); when segmentation cannot be asked,
    a `503` (retry later). An existing segment with no members is accepted (its start
    reports the empty audience). Nothing is sent until `:start`. With an `Idempotency-Key`,
    a retry returns the first answer."""
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="create_campaign",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed(etag=True)) is not None:
        return replayed  # type: ignore[return-value]
    now = _now()
    campaign = Campaign(
        status="draft", created_by=principal.subject, created_at=now, updated_at=now, version=1
    )
    _apply(campaign, body)
    await _check_segment(request, body)
    campaign = await CampaignRepository(session).add(campaign)
    read = CampaignRead.model_validate(campaign)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    response.headers["ETag"] = _etag(campaign)
    response.headers["Location"] = f"/campaigns/{campaign.id}"
    return read


@router.get(
    "",
    summary="List campaigns",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(400, 401, 403, 422),
)
async def list_campaigns(
    session: SessionDep,
    page: CursorDep,
    status_: Annotated[CampaignStatus | None, Query(alias="status")] = None,
) -> CursorPage[CampaignRead]:
    """Campaigns, oldest first, one page at a time (pass `next_cursor` as `cursor`)."""
    items, next_cursor = await CampaignRepository(session).find(page, status=status_)
    return CursorPage(
        items=[CampaignRead.model_validate(c) for c in items], next_cursor=next_cursor
    )


@router.get(
    "/{campaign_id}",
    summary="Get a campaign",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 422)},
)
async def get_campaign(campaign: CampaignDep, response: Response) -> CampaignRead:
    """One campaign by id, with its `ETag`."""
    response.headers["ETag"] = _etag(campaign)
    return CampaignRead.model_validate(campaign)


@router.put(
    "/{campaign_id}",
    summary="Replace a campaign",
    dependencies=_WRITER,
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422, 503)},
)
async def replace_campaign(
    campaign: LockedCampaignDep,
    body: CampaignBody,
    session: SessionDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    """Replaces every field (send the whole campaign, as on create), while it is `draft` or
    `scheduled`; a sending, completed or cancelled campaign is a `409`. Send `If-Match`
    with the `ETag` you read: a stale one is a `412`. The segment is checked as on create
    (`422` `unknown-segment`, `503` when segmentation cannot be asked)."""
    _check_if_match(campaign, if_match)
    _editable(campaign, "change")
    _apply(campaign, body)
    await _check_segment(request, body)
    campaign.version += 1
    campaign.updated_at = _now()
    campaign = await CampaignRepository(session).flush(campaign)
    response.headers["ETag"] = _etag(campaign)
    return CampaignRead.model_validate(campaign)


@router.post(
    "/{campaign_id}:start",
    summary="Start (or schedule) a campaign",
    dependencies=_WRITER,
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def start_campaign(
    campaign: LockedCampaignDep,
    session: SessionDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> StartResult:
    """With a future `scheduled_at` the campaign becomes `scheduled` (the sender starts it
    then). Otherwise it starts now: one message per audience member is queued — or skipped
    (`no-consent` for the channel, `no-address`, `frequency-cap`), or deferred to the end of
    the customer's quiet hours — and the campaign is `sending`; the counts are answered.
    An empty audience is a `422` (`empty-audience`); an audience no one of which can be
    sent to is a `409` (`no-reachable-recipient`, with the counts); either way nothing is
    written."""
    _check_if_match(campaign, if_match)
    _editable(campaign, "start")
    now = _now()
    if campaign.scheduled_at is not None and campaign.scheduled_at > now:
        if campaign.status != "scheduled":
            campaign.status = "scheduled"
            campaign.version += 1
            campaign.updated_at = now
            campaign = await CampaignRepository(session).flush(campaign)
        response.headers["ETag"] = _etag(campaign)
        return StartResult(
            campaign=CampaignRead.model_validate(campaign),
            audience=0,
            queued=0,
            deferred=0,
            skipped={},
        )
    counts = await service.start(session, campaign, request.app.state.settings, now)
    campaign = await CampaignRepository(session).flush(campaign)
    sender = getattr(request.app.state, "campaign_sender", None)
    if sender is not None:
        sender.wake()
    response.headers["ETag"] = _etag(campaign)
    return StartResult(
        campaign=CampaignRead.model_validate(campaign),
        audience=counts.audience,
        queued=counts.queued,
        deferred=counts.deferred,
        skipped=counts.skipped,
    )


@router.post(
    "/{campaign_id}:cancel",
    summary="Cancel a campaign",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def cancel_campaign(
    campaign: LockedCampaignDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    """Stops a draft, scheduled or sending campaign: messages still waiting are skipped
    (`cancelled` in the report) at once (messages already handed to the provider are not
    recalled). A completed or cancelled campaign is a `409`."""
    _check_if_match(campaign, if_match)
    if campaign.status not in ("draft", "scheduled", "sending"):
        raise service.CampaignNotEditable(
            f"cannot cancel a campaign that is {campaign.status}", status=campaign.status
        )
    now = _now()
    campaign.status = "cancelled"
    campaign.completed_at = now
    campaign.updated_at = now
    campaign.version += 1
    repo = CampaignRepository(session)
    await repo.cancel_pending(campaign.id)
    campaign = await repo.flush(campaign)
    response.headers["ETag"] = _etag(campaign)
    return CampaignRead.model_validate(campaign)


@router.post(
    "/{campaign_id}:preview",
    summary="Render a campaign for one customer",
    dependencies=[Depends(require_scopes("interactions:read", "customers:pii"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def preview_campaign(
    campaign: CampaignDep,
    body: PreviewRequest,
    session: SessionDep,
    principal: PrincipalDep,
) -> Preview:
    """The subject and body the customer would get (needs `customers:pii`: it shows their
    data). A customer this service has no profile of is a `404`."""
    await ensure_customer_visible(session, principal, body.customer_id, customer_scope)
    recipient = await CampaignRepository(session).recipient(body.customer_id)
    if recipient is None:
        raise NotFound(f"customer {body.customer_id} is not known to campaigns")
    try:
        subject, text = service.render_for(campaign, recipient)
    except Exception as exc:  # data-dependent: the sandbox or the template refused
        raise service.InvalidTemplate(
            f"the campaign cannot be rendered for this customer: {exc}"
        ) from None
    return Preview(customer_id=body.customer_id, subject=subject, body=text)


@router.get(
    "/{campaign_id}/report",
    summary="A campaign's figures",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def campaign_report(
    campaign: CampaignDep,
    session: SessionDep,
    attribution_days: Annotated[
        int, Query(ge=0, le=365, description="Orders within this many days after a message.")
    ] = 7,
) -> CampaignReport:
    """Audience size, skipped by reason, queued / deferred / sending / sent / failed /
    unconfirmed, delivered, bounced, opened, clicked, unsubscribed, and the orders the
    recipients placed within `attribution_days` after their message, with revenue per
    currency."""
    figures = await CampaignRepository(session).report(campaign.id, attribution_days)
    return CampaignReport.of(campaign.id, campaign.status, attribution_days, figures)
