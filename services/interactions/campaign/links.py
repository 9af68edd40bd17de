"""The public end of tracking links: no credentials (mail clients follow them), a signed
token instead (see tracking.py). The gateway routes ``/api/v1/campaign-links`` here without
authentication."""

from datetime import UTC, datetime
from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.interactions.campaign import service
from services.interactions.campaign.consent import ConsentUnavailable
from services.interactions.campaign.repository import CampaignRepository
from services.interactions.campaign.tracking import PIXEL, BadLink, Link, Tracker, template_urls
from services.interactions.models import CampaignMessage
from shared.db import SessionDep
from shared.errors import NotFound, problem_responses

router = APIRouter(prefix="/campaign-links", tags=["campaigns"])

Token = Annotated[str, Path(min_length=1, max_length=100, description="The signed token.")]

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(title: str, text: str, *, confirm: bool = False) -> HTMLResponse:
    # No ``action``: the form posts back to the very URL the browser shows (the gateway's
    # public one), not to this service's own path.
    form = (
        '<form method="post"><button type="submit">Unsubscribe</button></form>' if confirm else ""
    )
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"</head><body><h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>",
        headers=_NO_STORE,
    )


async def _resolve(
    request: Request, token: str, session: SessionDep
) -> tuple[Link, CampaignMessage]:
    tracker: Tracker = request.app.state.campaign_tracker
    try:
        link = tracker.verify(token)
    except BadLink:
        raise NotFound("no such link") from None
    message = await CampaignRepository(session).message(link.message_id)
    if message is None:
        raise NotFound("no such link")
    return link, message


@router.get(
    "/{token}",
    summary="Follow a tracking link (open pixel, click, unsubscribe page)",
    response_class=Response,
    responses={
        200: {
            "description": "The open pixel (`image/gif`) or the unsubscribe page (`text/html`).",
            "content": {"image/gif": {}, "text/html": {}},
        },
        302: {"description": "A click: redirects to the URL the campaign's template links to."},
        **problem_responses(404, 422),
    },
)
async def follow_link(token: Token, request: Request, session: SessionDep) -> Response:
    """Public, no credentials: the signed token is the authority; a forged or altered one is
    a `404`. The open pixel records the first open; a click records the click (and the open)
    and redirects to the URL at that position of the template — only URLs the template
    contains, never one from the request. The unsubscribe link shows a page whose button
    `POST`s back (a link scanner's `GET` unsubscribes nobody)."""
    link, message = await _resolve(request, token, session)
    now = datetime.now(UTC)
    repo = CampaignRepository(session)
    if link.kind == "open":
        if await repo.mark(message.id, "opened_at", now):
            await service.record_tracking(session, message, "email_opened", now)
        return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)
    if link.kind == "click":
        campaign = await repo.get(message.campaign_id)
        urls = template_urls(campaign.body_template) if campaign is not None else []
        if link.index >= len(urls):
            raise NotFound("no such link")
        url = urls[link.index]
        await repo.mark(message.id, "opened_at", now)  # a click is an open too
        await repo.mark(message.id, "clicked_at", now)
        # One interaction per link of the message (its event id repeats for a re-click).
        await service.record_tracking(
            session, message, "email_clicked", now, url=url, key=str(link.index)
        )
        return RedirectResponse(url, status_code=302, headers=_NO_STORE)
    return _page(
        "Unsubscribe",
        "Stop receiving these messages? Press the button to confirm.",
        confirm=True,
    )


@router.post(
    "/{token}",
    summary="Unsubscribe (one-click)",
    response_class=HTMLResponse,
    responses={
        200: {"description": "Unsubscribed.", "content": {"text/html": {}}},
        **problem_responses(404, 422),
    },
)
async def unsubscribe(token: Token, request: Request, session: SessionDep) -> HTMLResponse:
    """Public, no credentials (RFC 8058 one-click, and the unsubscribe page's button). The
    consent of the message's channel is withdrawn: here at once (nothing more is sent), and
    in customer360 through its API — retried by the campaign sender if customer360 cannot
    take it now. Only unsubscribe tokens are accepted (`404` otherwise)."""
    link, message = await _resolve(request, token, session)
    if link.kind != "unsubscribe":
        raise NotFound("no such link")
    now = datetime.now(UTC)
    repo = CampaignRepository(session)
    await repo.unsubscribe(message, now)
    if message.consent_synced_at is None:
        try:
            await request.app.state.campaign_consent.withdraw(message.customer_id, message.channel)
        except ConsentUnavailable:
            pass  # the sender tries again; the customer is unsubscribed here already
        else:
            await repo.consent_synced(message.id, now)
    return _page("Unsubscribed", "You will not receive these messages any more.")
