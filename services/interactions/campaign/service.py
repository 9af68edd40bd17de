"""Campaign rules shared by the API and the sender: starting (materialising the audience),
rendering a message for a customer, and recording what was sent as an interaction.

Errors::

    UnprocessableEntity
    ├── InvalidTemplate        a template with a syntax error or an unknown field (position)
    └── EmptyAudience          no one in the segment / list (nothing written)
    Conflict
    ├── CampaignNotEditable    a sending, completed or cancelled campaign
    └── NoReachableRecipient   everyone skipped (no consent, no address, capped): the counts
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.campaign.repository import CampaignRepository, QuietHours, StartCounts
from services.interactions.campaign.templates import check_template, customer_context, render
from services.interactions.config import Settings
from services.interactions.interaction.repository import InteractionRepository, NewInteraction
from services.interactions.interaction.service import events_for
from services.interactions.models import Campaign, CampaignMessage
from shared.errors import Conflict, UnprocessableEntity
from shared.messaging import publish

__all__ = [
    "CampaignNotEditable",
    "EmptyAudience",
    "InvalidTemplate",
    "NoReachableRecipient",
    "check_templates",
    "next_run",
    "on_order_placed",
    "on_task_due",
    "quiet_hours",
    "record_sent",
    "render_for",
    "run_recurring",
    "start",
]

#: Interaction channel of each campaign channel (the partner channel is a chat app).
INTERACTION_CHANNEL = {"email": "email", "sms": "sms", "webhook": "chat"}


class InvalidTemplate(UnprocessableEntity):
    slug = "invalid-template"


class EmptyAudience(UnprocessableEntity):
    slug = "empty-audience"


class CampaignNotEditable(Conflict):
    slug = "campaign-not-editable"


class NoReachableRecipient(Conflict):
    slug = "no-reachable-recipient"


def check_templates(subject: str | None, body: str) -> None:
    """422 with every problem of both templates, each with its pointer, line and column."""
    errors: list[dict[str, Any]] = []
    for pointer, source in (("/body/subject", subject), ("/body/body", body)):
        if source is None:
            continue
        for problem in check_template(source):
            errors.append(
                {
                    "pointer": pointer,
                    "detail": problem.detail,
                    "line": problem.line,
                    "column": problem.column,
                }
            )
    if errors:
        raise InvalidTemplate(
            "; ".join(
                f"{e['pointer']} line {e['line']}"
                + (f" column {e['column']}" if e["column"] else "")
                + f": {e['detail']}"
                for e in errors[:5]
            ),
            errors=errors,
        )


def quiet_hours(settings: Settings) -> QuietHours:
    return QuietHours(
        time.fromisoformat(settings.campaign_quiet_start),
        time.fromisoformat(settings.campaign_quiet_end),
    )


async def _write_messages(
    session: AsyncSession,
    campaign: Campaign,
    settings: Settings,
    now: datetime,
    *,
    customer_ids: list[UUID] | None = None,
    occurrence: str = "",
    not_before: datetime | None = None,
) -> StartCounts:
    """:meth:`CampaignRepository.start` with the settings' frequency cap and quiet hours."""
    return await CampaignRepository(session).start(
        campaign,
        now,
        cap=settings.campaign_frequency_cap,
        days=settings.campaign_frequency_days,
        quiet=quiet_hours(settings),
        customer_ids=customer_ids,
        occurrence=occurrence,
        not_before=not_before,
    )


async def start(
    session: AsyncSession, campaign: Campaign, settings: Settings, now: datetime
) -> StartCounts:
    """One message row per audience member (queued, deferred by quiet hours, or skipped with
    its reason) and the campaign ``sending``. An empty or wholly unreachable audience raises
    and, the transaction rolling back, leaves nothing behind. A triggered campaign writes no
    messages now: customers entering its segment get theirs (:func:`on_trigger`), and so on.
    A recurring campaign's run is :func:`run_recurring`."""
    if campaign.trigger is not None:
        _mark_started(campaign, now)
        await session.flush()
        return StartCounts(0, 0, 0, {})
    if campaign.every_days is not None:
        return await run_recurring(session, campaign, settings, now)
    counts = await _write_messages(session, campaign, settings, now)
    if counts.audience == 0:
        raise EmptyAudience(
            "the campaign's audience is empty: "
            + (
                f"segment {campaign.segment_id} has no members known here"
                if campaign.segment_id
                else "no customers listed"
            ),
            audience=0,
        )
    if counts.sendable == 0:
        raise NoReachableRecipient(
            f"none of the {counts.audience} customers of the audience can be sent to "
            f"({', '.join(f'{n} {r}' for r, n in sorted(counts.skipped.items()))}); "
            "nothing was sent",
            audience=counts.audience,
            skipped=counts.skipped,
        )
    _mark_started(campaign, now)
    await session.flush()
    return counts


def next_run(campaign: Campaign, now: datetime) -> datetime | None:
    """The run of a recurring campaign after its current one (``scheduled_at``): the first
    on its ``every_days`` grid later than ``now`` (runs missed while down are not
    replayed), unless that is after ``repeat_until``."""
    assert campaign.scheduled_at is not None
    assert campaign.every_days is not None
    step = timedelta(days=campaign.every_days)
    behind = max(0, (now - campaign.scheduled_at) // step)
    following = campaign.scheduled_at + step * (behind + 1)
    if campaign.repeat_until is not None and following > campaign.repeat_until:
        return None
    return following


async def run_recurring(
    session: AsyncSession, campaign: Campaign, settings: Settings, now: datetime
) -> StartCounts:
    """This run of a recurring campaign: the audience as it is now, one message per
    customer keyed by the run time (a run replayed writes nothing twice), and, in the
    same transaction, the next run armed (``scheduled`` again, ``scheduled_at`` moved on)
    — or, after the last run, ``sending`` until its messages are out, then ``completed``.
    An empty or unreachable audience is not an error here: the next run may find people."""
    assert campaign.scheduled_at is not None
    counts = await _write_messages(
        session,
        campaign,
        settings,
        now,
        occurrence=campaign.scheduled_at.astimezone(UTC).isoformat(),
    )
    following = next_run(campaign, now)
    if following is None:
        _mark_started(campaign, now)
    else:
        campaign.status = "scheduled"
        campaign.started_at = campaign.started_at or now
        campaign.scheduled_at = following
        campaign.updated_at = now
        campaign.version += 1
    await session.flush()
    return counts


def _mark_started(campaign: Campaign, now: datetime) -> None:
    campaign.status = "sending"
    campaign.started_at = campaign.started_at or now
    campaign.updated_at = now
    campaign.version += 1


async def on_trigger(
    session: AsyncSession, segment_id: UUID, customer_id: UUID, settings: Settings, now: datetime
) -> int:
    """A customer entered ``segment_id``: a message of each started ``segment_entered``
    campaign of that segment (skipped, deferred or queued by the usual rules; at most one per
    campaign and customer, so re-entering sends nothing new). Returns how many were written."""
    written = 0
    for campaign in await CampaignRepository(session).triggered_by_segment(segment_id):
        counts = await _write_messages(session, campaign, settings, now, customer_ids=[customer_id])
        written += counts.audience
    return written


async def on_order_placed(
    session: AsyncSession,
    customer_id: UUID,
    order_id: UUID,
    placed_at: datetime,
    settings: Settings,
    now: datetime,
) -> int:
    """An order of ``customer_id``: a message of each started ``order_placed`` campaign
    whose audience holds them, due ``delay_days`` after ``placed_at`` (``deferred`` till
    then; consent is judged now and again when due, caps and quiet hours when due). One
    per campaign and order: a replayed event writes nothing. Returns how many were
    written."""
    written = 0
    for campaign in await CampaignRepository(session).triggered_for("order_placed", customer_id):
        assert campaign.delay_days is not None
        counts = await _write_messages(
            session,
            campaign,
            settings,
            now,
            customer_ids=[customer_id],
            occurrence=f"order:{order_id}",
            not_before=placed_at + timedelta(days=campaign.delay_days),
        )
        written += counts.audience
    return written


async def on_task_due(
    session: AsyncSession,
    customer_id: UUID,
    task_id: UUID,
    rule_type: str | None,
    settings: Settings,
    now: datetime,
) -> int:
    """A task of ``customer_id`` fell due: a message of each started ``task_due`` campaign
    whose audience holds them (and whose ``rule_type``, if any, is the task's rule's),
    queued by the usual rules. One per campaign and task: announcing the task again (it
    was rescheduled) or replaying writes nothing. Returns how many were written."""
    written = 0
    triggered = CampaignRepository(session).triggered_for
    for campaign in await triggered("task_due", customer_id, rule_type=rule_type):
        counts = await _write_messages(
            session,
            campaign,
            settings,
            now,
            customer_ids=[customer_id],
            occurrence=f"task:{task_id}",
        )
        written += counts.audience
    return written


def render_for(
    campaign: Campaign, recipient: dict[str, Any], unsubscribe_url: str = ""
) -> tuple[str, str]:
    """``(subject, body)`` of ``campaign`` for one recipient projection row. An e-mail body
    that does not place ``unsubscribe_url`` itself gets it as a last line."""
    customer = customer_context(recipient)
    context = {"id": str(campaign.id), "name": campaign.name}
    subject = ""
    if campaign.subject_template:
        # A header is one line: newlines a template produced become spaces.
        subject = " ".join(
            render(campaign.subject_template, customer, context, unsubscribe_url).split()
        )
    body = render(campaign.body_template, customer, context, unsubscribe_url)
    if unsubscribe_url and campaign.channel == "email" and unsubscribe_url not in body:
        body = body.rstrip("\n") + f"\n\n--\nUnsubscribe: {unsubscribe_url}\n"
    return subject, body


async def record_tracking(
    session: AsyncSession,
    message: CampaignMessage,
    kind: str,
    at: datetime,
    *,
    url: str | None = None,
    key: str = "",
) -> None:
    """An ``email_opened`` / ``email_clicked`` / ``email_delivered`` / ``email_bounced``
    interaction of a campaign e-mail (once per message, kind and ``key``)."""
    if message.channel != "email":
        return
    details: dict[str, Any] = {"message_id": str(message.id), "campaign": str(message.campaign_id)}
    if url is not None:
        details["url"] = url
    row = NewInteraction(
        id=uuid4(),
        customer_id=message.customer_id,
        channel="email",
        kind=kind,
        direction="outbound",
        occurred_at=at,
        agent_id=None,
        subject=None,
        summary=None,
        metadata=details,
        source="campaign",
        event_id=f"{message.id}:{kind}:{key}",
    )
    if await InteractionRepository(session).store_many([row]):
        await publish(session, *events_for([row]))


async def record_sent(
    session: AsyncSession,
    *,
    interaction_id: UUID,
    message_id: UUID,
    campaign: Campaign,
    customer_id: UUID,
    address: str,
    subject: str,
    body: str,
    at: datetime,
) -> None:
    """The outbound interaction of a sent message (with its event, through the outbox), in
    the caller's transaction — the one that marks the message ``sent``."""
    row = NewInteraction(
        id=interaction_id,
        customer_id=customer_id,
        channel=INTERACTION_CHANNEL[campaign.channel],
        kind="message",
        direction="outbound",
        occurred_at=at,
        agent_id=None,
        subject=subject[:300] or None,
        summary=body[:2000],
        metadata={
            "message_id": str(message_id),
            "to_address": address,
            "campaign_id": str(campaign.id),
            "campaign": campaign.name,
        },
        source="campaign",
        event_id=str(message_id),
    )
    inserted = await InteractionRepository(session).store_many([row])
    if inserted:
        await publish(session, *events_for([row]))
