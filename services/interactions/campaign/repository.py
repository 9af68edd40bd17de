"""SQL of campaigns: the campaigns, the recipient projection, the set-based start
(one ``INSERT … SELECT`` decides every audience member's fate), the sender's claims, and
the report."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import (
    Campaign,
    CampaignMessage,
    CampaignRecipient,
    CarePlanOrder,
    CarePlanSegmentMember,
)
from services.interactions.models.campaign import SKIP_REASONS
from shared.db import driver_connection
from shared.pagination import CursorParams, paginate

_MESSAGE = CampaignMessage.__table__.fullname  # type: ignore[attr-defined]
_RECIPIENT = CampaignRecipient.__table__.fullname  # type: ignore[attr-defined]
_MEMBER = CarePlanSegmentMember.__table__.fullname  # type: ignore[attr-defined]
_ORDER = CarePlanOrder.__table__.fullname  # type: ignore[attr-defined]
_CAMPAIGN = Campaign.__table__.fullname  # type: ignore[attr-defined]
#: Advisory locks, one per customer, held by a claim until it commits (the frequency cap).
CAP_LOCK_NAMESPACE = zlib.crc32(b"rapport.interactions.campaign-cap") - 2**31
_FINISH_COLUMNS = frozenset(
    {"status", "skip_reason", "last_error", "not_before", "sent_at", "interaction_id"}
)


def _uuid(value: Any) -> UUID:
    """asyncpg's own UUID type as the standard one (orjson and pydantic want that)."""
    return value if type(value) is UUID else UUID(bytes=value.bytes)


#: Where each channel sends to, and which consent it needs. The partner channel
#: (``webhook``: WhatsApp-like messaging apps) addresses the phone number and needs the
#: profile's ``phone`` consent, customer360 having no consent of its own for it.
_ADDRESS = {"email": "r.email", "sms": "r.phone", "webhook": "r.phone"}
_CONSENT = {"email": "r.consent_email", "sms": "r.consent_sms", "webhook": "r.consent_phone"}

_AUDIENCE_SEGMENT = (
    f"SELECT customer_id FROM {_MEMBER} WHERE segment_id = CAST(:segment_id AS uuid)"
)
_AUDIENCE_LIST = "SELECT DISTINCT unnest(CAST(:customer_ids AS uuid[])) AS customer_id"


def _quiet_sql(now: str, tz: str) -> tuple[str, str]:
    """``(in quiet hours, end of them)`` at ``now`` for a customer in timezone ``tz`` (SQL
    expressions). Quiet hours: local time ``t`` inside ``[start, end)`` (which may wrap
    midnight); they end at the next local ``end``."""
    local = f"({now} AT TIME ZONE {tz})"
    quiet = f"""CASE
        WHEN CAST(:q_start AS time) = CAST(:q_end AS time) THEN false
        WHEN CAST(:q_start AS time) < CAST(:q_end AS time)
            THEN {local}::time >= CAST(:q_start AS time) AND {local}::time < CAST(:q_end AS time)
        ELSE {local}::time >= CAST(:q_start AS time) OR {local}::time < CAST(:q_end AS time)
    END"""
    resume = f"""((({local})::date + CASE WHEN {local}::time < CAST(:q_end AS time) THEN 0 ELSE 1 END)
        + CAST(:q_end AS time)) AT TIME ZONE {tz}"""
    return quiet, resume


def _start_sql(channel: str, *, segment: bool) -> str:
    """Every audience member's message row of one occurrence, in one statement.

    Quiet hours (customer's timezone, else UTC, see :func:`_quiet_sql`) defer the message to
    their end. The frequency cap counts the customer's campaign messages (any campaign)
    sent, being sent or waiting, in the last ``days`` days. ``:not_before`` later than
    ``:now`` (an ``order_placed`` trigger's delay) queues the message ``deferred`` until
    then: quiet hours and the cap are then judged when it is due (:meth:`claim`)."""
    quiet, resume = _quiet_sql("CAST(:now AS timestamptz)", "tz")
    return f"""
    WITH audience AS ({_AUDIENCE_SEGMENT if segment else _AUDIENCE_LIST}),
    f AS (
        SELECT a.customer_id, coalesce({_CONSENT[channel]}, false) AS consent,
               {_ADDRESS[channel]} AS address, coalesce(r.timezone, 'UTC') AS tz,
               (SELECT count(*) FROM {_MESSAGE} cm
                 WHERE cm.customer_id = a.customer_id
                   AND cm.status IN ('queued', 'deferred', 'sending', 'sent', 'unconfirmed')
                   AND coalesce(cm.sent_at, cm.created_at)
                       >= CAST(:now AS timestamptz) - make_interval(days => CAST(:days AS integer))
               ) AS recent
        FROM audience a LEFT JOIN {_RECIPIENT} r ON r.customer_id = a.customer_id
    ), d AS (
        SELECT f.*, CASE
            WHEN NOT f.consent THEN 'no-consent'
            WHEN f.address IS NULL OR f.address = '' THEN 'no-address'
            WHEN CAST(:later AS boolean) THEN NULL
            WHEN f.recent >= CAST(:cap AS integer) THEN 'frequency-cap'
        END AS skip_reason, NOT CAST(:later AS boolean) AND {quiet} AS quiet
        FROM f
    )
    INSERT INTO {_MESSAGE} (id, campaign_id, customer_id, occurrence, channel, status,
                            skip_reason, address, not_before, attempts, created_at)
    SELECT gen_random_uuid(), CAST(:campaign_id AS uuid), d.customer_id,
           CAST(:occurrence AS text), CAST(:channel AS text),
           CASE WHEN d.skip_reason IS NOT NULL THEN 'skipped'
                WHEN d.quiet OR CAST(:later AS boolean) THEN 'deferred' ELSE 'queued' END,
           d.skip_reason,
           CASE WHEN d.skip_reason IS NULL THEN d.address END,
           CASE WHEN d.skip_reason IS NULL AND d.quiet THEN {resume}
                ELSE CAST(:not_before AS timestamptz) END,
           0, CAST(:now AS timestamptz)
    FROM d
    ON CONFLICT (campaign_id, customer_id, occurrence) DO NOTHING
    RETURNING status, skip_reason
    """


#: Due messages, locked, and their customers' cap locks, in customer order: the first
#: statement of a claim. ``$1`` now, ``$2`` the limit.
_PICK_SQL = f"""
    WITH picked AS MATERIALIZED (
        SELECT m.id, m.customer_id FROM {_MESSAGE} m
        WHERE m.status IN ('queued', 'deferred') AND m.not_before <= $1::timestamptz
          AND EXISTS (SELECT 1 FROM {_CAMPAIGN} c
                      WHERE c.id = m.campaign_id AND c.status IN ('sending', 'scheduled'))
        ORDER BY m.not_before
        LIMIT $2::integer
        FOR UPDATE OF m SKIP LOCKED
    )
    SELECT ordered.id, pg_advisory_xact_lock({CAP_LOCK_NAMESPACE},
                                             hashtext(ordered.customer_id::text))
    FROM (SELECT id, customer_id FROM picked ORDER BY customer_id) AS ordered
"""


def _claim_sql() -> str:
    """The second statement of the sender's claim (see :meth:`CampaignRepository.claim`):
    each picked message judged again as it goes out: consent for its channel in the
    recipient projection now (a withdrawal, or an erasure that removed the projection row,
    skips it ``no-consent``), the frequency cap against the messages the customer was sent
    (or is being sent) in the last ``days`` days, and quiet hours now (deferred again to
    their end).

    The cap holds across senders: the first statement took each customer's cap lock, which
    a concurrent claim of the same customer's other message holds until it commits (its
    message then ``sending``), and this statement's snapshot is taken after that."""
    quiet, resume = _quiet_sql("CAST(:now AS timestamptz)", "coalesce(r.timezone, 'UTC')")
    consent = (
        "CASE m.channel WHEN 'email' THEN r.consent_email WHEN 'sms' THEN r.consent_sms"
        " ELSE r.consent_phone END"
    )
    return f"""
    WITH judged AS MATERIALIZED (
        SELECT m.id, CASE
            WHEN NOT coalesce({consent}, false) THEN 'no-consent'
            WHEN (SELECT count(*) FROM {_MESSAGE} o
                   WHERE o.customer_id = m.customer_id AND o.id <> m.id
                     AND o.status IN ('sending', 'sent', 'unconfirmed')
                     AND coalesce(o.sent_at, o.not_before)
                         >= CAST(:now AS timestamptz)
                            - make_interval(days => CAST(:days AS integer))
                 ) >= CAST(:cap AS integer) THEN 'frequency-cap'
        END AS reason,
        {quiet} AS quiet, {resume} AS resume
        FROM {_MESSAGE} m LEFT JOIN {_RECIPIENT} r ON r.customer_id = m.customer_id
        WHERE m.id = ANY(CAST(:ids AS uuid[]))
    )
    UPDATE {_MESSAGE} m
    SET status = CASE WHEN j.reason IS NOT NULL THEN 'skipped'
                      WHEN j.quiet THEN 'deferred' ELSE 'sending' END,
        skip_reason = j.reason,
        not_before = CASE WHEN j.reason IS NULL AND j.quiet THEN j.resume ELSE m.not_before END,
        lease_until = CASE WHEN j.reason IS NULL AND NOT j.quiet
                           THEN CAST(:lease_until AS timestamptz) END,
        attempts = m.attempts + CASE WHEN j.reason IS NULL AND NOT j.quiet THEN 1 ELSE 0 END
    FROM judged j WHERE m.id = j.id
    RETURNING m.id, m.campaign_id, m.customer_id, m.channel, m.address, m.attempts, m.status
    """


#: asyncpg's numbered parameters, in :meth:`CampaignRepository.claim`'s order.
_CLAIM_PARAMETERS = ("now", "lease_until", "ids", "cap", "days", "q_start", "q_end")
_CLAIM_SQL = re.sub(
    r"(?<!:):(" + "|".join(_CLAIM_PARAMETERS) + r")\b",
    lambda match: f"${_CLAIM_PARAMETERS.index(match.group(1)) + 1}",
    _claim_sql(),
)


@dataclass
class StartCounts:
    audience: int
    queued: int
    deferred: int
    skipped: dict[str, int]

    @property
    def sendable(self) -> int:
        return self.queued + self.deferred


@dataclass(frozen=True)
class Claimed:
    id: UUID
    campaign_id: UUID
    customer_id: UUID
    channel: str
    address: str | None
    attempts: int
    #: ``sending`` (to send now), or what the send-time checks made of it instead
    #: (``skipped``, or ``deferred`` by quiet hours).
    status: str = "sending"


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- campaigns ---------------------------------------------------------------------
    async def add(self, campaign: Campaign) -> Campaign:
        self.session.add(campaign)
        await self.session.flush()
        await self.session.refresh(campaign)
        return campaign

    async def get(self, campaign_id: UUID, *, lock: bool = False) -> Campaign | None:
        statement = select(Campaign).where(Campaign.id == campaign_id)
        if lock:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).first()

    async def flush(self, campaign: Campaign) -> Campaign:
        await self.session.flush()
        await self.session.refresh(campaign)
        return campaign

    async def find(
        self, params: CursorParams, *, status: str | None
    ) -> tuple[list[Campaign], str | None]:
        statement = select(Campaign)
        if status is not None:
            statement = statement.where(Campaign.status == status)
        return await paginate(
            self.session,
            statement,
            keys=[Campaign.created_at, Campaign.id],
            key_of=lambda c: (c.created_at, c.id),
            params=params,
        )

    async def start(
        self,
        campaign: Campaign,
        now: datetime,
        *,
        cap: int,
        days: int,
        quiet: QuietHours,
        customer_ids: list[UUID] | None = None,
        occurrence: str = "",
        not_before: datetime | None = None,
    ) -> StartCounts:
        """Materialise the audience (or, for a trigger, ``customer_ids``) as the message rows
        of ``occurrence`` (see :func:`_start_sql`); ``not_before`` after ``now`` defers
        them until then."""
        listed = customer_ids if customer_ids is not None else campaign.customer_ids
        segment = customer_ids is None and campaign.segment_id is not None
        sql = _start_sql(campaign.channel, segment=segment)
        result = await self.session.execute(
            text(sql),
            {
                "campaign_id": campaign.id,
                "segment_id": campaign.segment_id,
                "customer_ids": listed,
                "channel": campaign.channel,
                "now": now,
                "cap": cap,
                "days": days,
                "q_start": quiet.start,
                "q_end": quiet.end,
                "occurrence": occurrence,
                "not_before": not_before or now,
                "later": not_before is not None and not_before > now,
            },
        )
        counts = StartCounts(0, 0, 0, {})
        for status, reason in result.all():
            counts.audience += 1
            if status == "queued":
                counts.queued += 1
            elif status == "deferred":
                counts.deferred += 1
            else:
                counts.skipped[reason] = counts.skipped.get(reason, 0) + 1
        return counts

    async def due_scheduled(self, now: datetime, limit: int) -> list[Campaign]:
        """Scheduled campaigns whose time has come, locked (``SKIP LOCKED``: another replica
        starting one is left alone)."""
        statement = (
            select(Campaign)
            .where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)
            .order_by(Campaign.scheduled_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(statement)).all())

    async def complete_finished(self, now: datetime) -> int:
        """Sending campaigns with nothing left to send become ``completed``."""
        m = CampaignMessage
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.status == "sending",
                Campaign.trigger.is_(None),  # a triggered campaign runs until cancelled
                ~exists().where(
                    m.campaign_id == Campaign.id,
                    m.status.in_(("queued", "deferred", "sending")),
                ),
            )
            .values(status="completed", completed_at=now, updated_at=now)
            .returning(Campaign.id)
        )
        return len(result.all())

    async def any_started(self, trigger: str) -> bool:
        statement = select(
            exists().where(Campaign.status == "sending", Campaign.trigger == trigger)
        )
        return bool(await self.session.scalar(statement))

    async def triggered_for(
        self, trigger: str, customer_id: UUID, *, rule_type: str | None = None
    ) -> list[Campaign]:
        """Started campaigns of ``trigger`` whose audience holds ``customer_id`` now (listed,
        or a member of the segment in the membership projection); for ``task_due``, those
        without a ``rule_type`` filter or with ``rule_type``."""
        member = select(CarePlanSegmentMember.segment_id).where(
            CarePlanSegmentMember.customer_id == customer_id
        )
        statement = (
            select(Campaign)
            .where(
                Campaign.status == "sending",
                Campaign.trigger == trigger,
                Campaign.segment_id.in_(member) | Campaign.customer_ids.contains([customer_id]),
            )
            .order_by(Campaign.created_at, Campaign.id)
        )
        if trigger == "task_due":
            statement = statement.where(
                Campaign.rule_type.is_(None) | (Campaign.rule_type == rule_type)
            )
        return list((await self.session.scalars(statement)).all())

    async def triggered_by_segment(self, segment_id: UUID) -> list[Campaign]:
        statement = select(Campaign).where(
            Campaign.status == "sending",
            Campaign.trigger == "segment_entered",
            Campaign.segment_id == segment_id,
        )
        return list((await self.session.scalars(statement)).all())

    # --- the sender's claims -----------------------------------------------------------
    async def expire_leases(self, now: datetime) -> int:
        """Messages claimed by a sender that never reported back (it crashed after, or
        during, the provider call): possibly delivered, so ``unconfirmed``, never resent."""
        m = CampaignMessage
        result = await self.session.execute(
            update(m)
            .where(m.status == "sending", m.lease_until < now)
            .values(status="unconfirmed", lease_until=None, last_error="lease expired")
            .returning(m.id)
        )
        return len(result.all())

    # The sender's three statements per message go straight to asyncpg (FIELD-NOTES: a
    # statement through SQLAlchemy Core costs several times the driver's own), inside the
    # session's transaction.
    async def claim(
        self,
        now: datetime,
        lease_s: float,
        limit: int = 1,
        *,
        cap: int,
        days: int,
        quiet: QuietHours,
    ) -> list[Claimed]:
        """Up to ``limit`` due messages of sending (or recurring, between runs) campaigns,
        marked ``sending`` with a lease — or, failing the send-time checks of
        :func:`_claim_sql`, ``skipped`` or ``deferred`` (returned too, with that status);
        the caller commits this before calling the provider.

        Two statements: :data:`_PICK_SQL` picks (a ``MATERIALIZED`` CTE locked with ``SKIP
        LOCKED``, see ``scheduling.claim_batch`` for why, locking only the message rows so
        concurrent senders never wait on the campaign row) and takes the customers' cap
        locks; :func:`_claim_sql` then judges in a snapshot taken after those locks."""
        # Straight to asyncpg (FIELD-NOTES: a statement through SQLAlchemy Core costs
        # several times the driver's own), inside the session's transaction.
        driver = await driver_connection(self.session)
        picked = [r[0] for r in await driver.fetch(_PICK_SQL, now, limit)]
        if not picked:
            return []
        rows = await driver.fetch(
            _CLAIM_SQL,
            now,
            now + timedelta(seconds=lease_s),
            picked,
            cap,
            days,
            quiet.start,
            quiet.end,
        )
        return [
            Claimed(_uuid(r[0]), _uuid(r[1]), _uuid(r[2]), r[3], r[4], r[5], r[6]) for r in rows
        ]

    async def cancel_pending(self, campaign_id: UUID) -> int:
        """A cancelled campaign's messages still waiting become ``skipped`` (``cancelled``);
        those being sent finish as they will."""
        m = CampaignMessage
        result = await self.session.execute(
            update(m)
            .where(m.campaign_id == campaign_id, m.status.in_(("queued", "deferred")))
            .values(status="skipped", skip_reason="cancelled")
            .returning(m.id)
        )
        return len(result.all())

    async def finish(self, message_id: UUID, values: dict[str, Any]) -> bool:
        """Record the outcome of a claimed message; ``False`` if it is no longer ours (its
        lease expired and it was marked ``unconfirmed``)."""
        columns = sorted(values)
        unknown = set(columns) - _FINISH_COLUMNS
        if unknown:
            raise ValueError(f"not a message outcome: {sorted(unknown)}")
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        driver = await driver_connection(self.session)
        row = await driver.fetchrow(
            f"UPDATE {_MESSAGE} SET lease_until = NULL, {assignments}"
            " WHERE id = $1 AND status = 'sending' RETURNING id",
            message_id,
            *(values[c] for c in columns),
        )
        return row is not None

    async def recipient(self, customer_id: UUID) -> dict[str, Any] | None:
        driver = await driver_connection(self.session)
        row = await driver.fetchrow(
            f"SELECT customer_id, display_name, email, phone, consent_email, consent_sms,"
            f" consent_phone, timezone, locale, lifecycle_stage, tags, custom_fields::text"
            f" FROM {_RECIPIENT} WHERE customer_id = $1",
            customer_id,
        )
        if row is None:
            return None
        found = dict(row)
        found["custom_fields"] = json.loads(found.pop("custom_fields") or "{}")
        found["customer_id"] = _uuid(found["customer_id"])
        return found

    # --- tracking ----------------------------------------------------------------------
    async def message(self, message_id: UUID) -> CampaignMessage | None:
        return await self.session.get(CampaignMessage, message_id)

    async def mark(self, message_id: UUID, column: str, at: datetime) -> bool:
        """Set a tracking timestamp once (the first open, click… counts)."""
        m = CampaignMessage
        col = getattr(m, column)
        result = await self.session.execute(
            update(m).where(m.id == message_id, col.is_(None)).values({column: at}).returning(m.id)
        )
        return result.first() is not None

    async def unsubscribe(self, message: CampaignMessage, at: datetime) -> bool:
        """Record an unsubscribe from ``message`` (the first counts) and withdraw the
        channel's consent in the projection at once, so nothing more is sent meanwhile."""
        first = await self.mark(message.id, "unsubscribed_at", at)
        column = {"email": "consent_email", "sms": "consent_sms", "webhook": "consent_phone"}
        await self.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.customer_id == message.customer_id)
            .values({column[message.channel]: False, "updated_at": at})
        )
        return first

    async def unsynced_unsubscribes(self, limit: int) -> list[tuple[UUID, UUID, str]]:
        m = CampaignMessage
        rows = await self.session.execute(
            select(m.id, m.customer_id, m.channel)
            .where(m.unsubscribed_at.is_not(None), m.consent_synced_at.is_(None))
            .order_by(m.unsubscribed_at)
            .limit(limit)
        )
        return [(r[0], r[1], r[2]) for r in rows.all()]

    async def consent_synced(self, message_id: UUID, at: datetime) -> None:
        await self.session.execute(
            update(CampaignMessage)
            .where(CampaignMessage.id == message_id)
            .values(consent_synced_at=at)
        )

    # --- the report --------------------------------------------------------------------
    async def report(self, campaign_id: UUID, attribution_days: int) -> dict[str, Any]:
        m = CampaignMessage
        counts = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count().filter(m.status == "queued"),
                    func.count().filter(m.status == "deferred"),
                    func.count().filter(m.status == "sending"),
                    func.count().filter(m.status == "sent"),
                    func.count().filter(m.status == "failed"),
                    func.count().filter(m.status == "unconfirmed"),
                    *(
                        func.count().filter(m.status == "skipped", m.skip_reason == reason)
                        for reason in SKIP_REASONS
                    ),
                    func.count(m.delivered_at),
                    func.count(m.bounced_at),
                    func.count(m.opened_at),
                    func.count(m.clicked_at),
                    func.count(m.unsubscribed_at),
                ).where(m.campaign_id == campaign_id)
            )
        ).one()
        names = (
            "audience",
            "queued",
            "deferred",
            "sending",
            "sent",
            "failed",
            "unconfirmed",
            *SKIP_REASONS,
            "delivered",
            "bounced",
            "opened",
            "clicked",
            "unsubscribed",
        )
        figures = dict(zip(names, counts, strict=True))
        # Orders placed by recipients of a sent message within N days of it.
        o = CarePlanOrder
        revenue = (
            await self.session.execute(
                select(o.currency, func.count(), func.coalesce(func.sum(o.total), 0))
                .where(
                    exists().where(
                        m.campaign_id == campaign_id,
                        m.customer_id == o.customer_id,
                        m.sent_at.is_not(None),
                        o.placed_at >= m.sent_at,
                        o.placed_at < m.sent_at + timedelta(days=attribution_days),
                    )
                )
                .group_by(o.currency)
                .order_by(o.currency)
            )
        ).all()
        figures["orders"] = [
            {"currency": currency, "orders": n, "revenue": total} for currency, n, total in revenue
        ]
        return figures


_PROVIDER_COLUMNS = {
    "delivered": ("delivered_at",),
    "bounce": ("bounced_at",),
    "open": ("opened_at",),
    "click": ("opened_at", "clicked_at"),
}


async def apply_email_events(session: AsyncSession, events: Sequence[Any]) -> int:
    """E-mail platform events about campaign messages (``partners.CampaignEmailEvent``):
    the first of each kind sets its timestamp; unknown message ids are ignored."""
    repo = CampaignRepository(session)
    changed = 0
    for item in events:
        at = item.at or datetime.now(UTC)
        for column in _PROVIDER_COLUMNS[item.event]:
            changed += await repo.mark(item.message_id, column, at)
    return changed


class RecipientRepository:
    """The recipient projection, kept from customer360's events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, customer_id: UUID, values: dict[str, Any]) -> None:
        statement = insert(CampaignRecipient).values(customer_id=customer_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CampaignRecipient.customer_id],
                set_={**values, "updated_at": func.now()},
            )
        )

    async def merge(self, merged_id: UUID, survivor_id: UUID) -> None:
        """The duplicate's messages count for the survivor (frequency caps, reports) unless
        the survivor has its own of that campaign and occurrence; those left waiting are
        skipped (``merged``: the survivor gets its own); its profile facts go (customer360
        sends the survivor's)."""
        m, mine = CampaignMessage, CampaignMessage.__table__.alias("mine")
        await self.session.execute(
            update(m)
            .where(
                m.customer_id == merged_id,
                ~exists().where(
                    and_(
                        mine.c.campaign_id == m.campaign_id,
                        mine.c.customer_id == survivor_id,
                        mine.c.occurrence == m.occurrence,
                    )
                ),
            )
            .values(customer_id=survivor_id)
        )
        await self._skip_waiting(merged_id, "merged")
        await self.forget(merged_id)

    async def forget(self, customer_id: UUID) -> None:
        """Erase: the profile facts go; the customer's messages still waiting are skipped
        (``erased``); the rest keep only ids, statuses and times (reports still add up),
        not the address."""
        await self.session.execute(
            delete(CampaignRecipient).where(CampaignRecipient.customer_id == customer_id)
        )
        await self._skip_waiting(customer_id, "erased")
        await self.session.execute(
            update(CampaignMessage)
            .where(CampaignMessage.customer_id == customer_id)
            .values(address=None, last_error=None)
        )

    async def _skip_waiting(self, customer_id: UUID, reason: str) -> None:
        m = CampaignMessage
        await self.session.execute(
            update(m)
            .where(m.customer_id == customer_id, m.status.in_(("queued", "deferred")))
            .values(status="skipped", skip_reason=reason)
        )
