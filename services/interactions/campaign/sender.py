"""The campaign sender: starts scheduled campaigns when due and sends their queued messages.

Every replica runs one (``INTERACTIONS_CAMPAIGN_SENDER_ENABLED``); they share the work
through ``FOR UPDATE SKIP LOCKED`` claims. ``python -m services.interactions.campaign.sender``
runs one on its own (ops, the crash test, the benchmark).

**Crash-resume, at most once.** A message is marked ``sending`` with a lease in its own
committed transaction *before* the provider is called, and ``sent`` (with its outbound
interaction and event) in the transaction right after. A sender that dies between the two
leaves the row ``sending``: the message may or may not have reached the SMTP server, and
resending could deliver it twice. When the lease expires the row becomes ``unconfirmed`` — it
is never resent — and the campaign report counts it. Rows still ``queued`` are simply sent
by whichever sender runs next. So a crash costs at most ``campaign_sender_concurrency``
unconfirmed messages per sender, and never a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosmtplib
import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.campaign import service
from services.interactions.campaign.consent import ConsentClient, ConsentUnavailable
from services.interactions.campaign.delivery import (
    EmailProvider,
    HttpProvider,
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    TokenBucket,
)
from services.interactions.campaign.repository import CampaignRepository, Claimed
from services.interactions.campaign.tracking import Tracker
from services.interactions.config import Settings
from services.interactions.models import Campaign
from services.interactions.scheduling import Clock, PeriodicJob, running_job, utcnow
from shared.db import Database
from shared.errors import RapportError

__all__ = ["CampaignSender", "campaign_sender_lifespan"]

logger = logging.getLogger(__name__)

_CONSENT = {"email": "consent_email", "sms": "consent_sms", "webhook": "consent_phone"}


class CampaignSender(PeriodicJob):
    name = "campaign-sender"

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        now: Clock = utcnow,
        http: httpx.AsyncClient | None = None,
        consent: ConsentClient | None = None,
    ) -> None:
        super().__init__(database, now=now, interval_s=settings.campaign_sender_interval_s)
        self.settings = settings
        self.email = EmailProvider(settings)
        self._own_http = http is None
        self.http_client = http or httpx.AsyncClient(timeout=settings.smtp_timeout_s)
        self.http = HttpProvider(settings, self.http_client)
        self.tracker = Tracker(settings.campaign_tracking_base_url, settings.tracking_secret)
        self._own_consent = consent is None
        self.consent = consent or ConsentClient(
            settings.customer360_url,
            settings.internal_token_secret,
            timeout_s=settings.customer360_timeout_s,
        )
        self.buckets = {
            "email": TokenBucket(settings.campaign_rate_per_s),
            "http": TokenBucket(settings.campaign_rate_per_s),
        }
        #: Campaigns being sent, by id (their templates cannot change while sending).
        self._campaigns: dict[uuid.UUID, Campaign] = {}
        self._wakeup = asyncio.Event()
        #: Counted since start (the benchmark and the logs read them).
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.unconfirmed = 0

    def wake(self) -> None:
        """Run a pass soon (a campaign was just started) instead of after the interval."""
        self._wakeup.set()

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.interval_s)
        if self._wakeup.is_set():
            self._wakeup.clear()
            await asyncio.sleep(0.1)  # the starting request commits as it answers

    def report(self, result: Any) -> str | None:
        return f"{result} sent" if result else None

    async def close(self) -> None:
        if self._own_http:
            await self.http_client.aclose()
        if self._own_consent:
            await self.consent.close()

    async def run_once(self) -> int:
        """Start due campaigns, expire stale leases, send everything due; returns how many
        messages were sent."""
        self._campaigns.clear()
        await self.start_due()
        async with self.database.session() as session:
            self.unconfirmed += await CampaignRepository(session).expire_leases(self.now())
        results = await asyncio.gather(
            *(self._work() for _ in range(self.settings.campaign_sender_concurrency))
        )
        async with self.database.session() as session:
            await CampaignRepository(session).complete_finished(self.now())
        await self.sync_unsubscribes()
        return sum(results)

    async def sync_unsubscribes(self, limit: int = 100) -> int:
        """Tell customer360 of unsubscribes it has not taken yet (it was down when the
        link was followed); returns how many it took."""
        async with self.database.session() as session:
            pending = await CampaignRepository(session).unsynced_unsubscribes(limit)
        done = 0
        for message_id, customer_id, channel in pending:
            try:
                await self.consent.withdraw(customer_id, channel)
            except ConsentUnavailable as exc:
                logger.warning("unsubscribe not yet in customer360: %s", exc)
                break
            async with self.database.session() as session:
                await CampaignRepository(session).consent_synced(message_id, self.now())
            done += 1
        return done

    async def start_due(self) -> int:
        started = 0
        while True:
            async with self.database.session() as session:
                due = await CampaignRepository(session).due_scheduled(self.now(), 1)
                if not due:
                    return started
                campaign = due[0]
                try:
                    async with session.begin_nested():
                        await service.start(session, campaign, self.settings, self.now())
                except RapportError as exc:
                    # Nothing to send to: the campaign ends, the reason in the log (its
                    # report shows an empty audience).
                    logger.warning("campaign %s not started: %s", campaign.id, exc.detail)
                    await session.refresh(campaign)
                    campaign.status = "completed"
                    campaign.started_at = campaign.completed_at = self.now()
                    campaign.version += 1
                started += 1

    async def _work(self) -> int:
        """Claim, send, record — the record of one message sharing a transaction with the
        claim of the next (one commit per message, and still every claim committed before
        its provider call)."""
        done = 0
        smtp = self.email.client()
        outcome: _Outcome | None = None
        try:
            while True:
                async with self.database.session() as session:
                    repo = CampaignRepository(session)
                    recorded = outcome is not None and await self._record(session, outcome)
                    outcome = None
                    claimed = await repo.claim(
                        self.now(),
                        self.settings.campaign_send_lease_s,
                        cap=self.settings.campaign_frequency_cap,
                        days=self.settings.campaign_frequency_days,
                        quiet=service.quiet_hours(self.settings),
                    )
                    recipient = campaign = None
                    if claimed and claimed[0].status == "sending":
                        recipient = await repo.recipient(claimed[0].customer_id)
                        campaign = self._campaigns.get(claimed[0].campaign_id)
                        if campaign is None:
                            campaign = await repo.get(claimed[0].campaign_id)
                            assert campaign is not None  # messages go with their campaign
                            self._campaigns[campaign.id] = campaign
                if recorded:
                    done += 1
                    self.sent += 1
                if not claimed:
                    return done
                if campaign is None:
                    continue  # skipped or deferred again by the send-time checks
                outcome = await self._deliver(claimed[0], campaign, recipient, smtp)
        finally:
            if smtp.is_connected:
                with contextlib.suppress(Exception):
                    await smtp.quit()

    async def _deliver(
        self,
        message: Claimed,
        campaign: Campaign,
        recipient: dict[str, Any] | None,
        smtp: aiosmtplib.SMTP,
    ) -> _Outcome:
        """Send one claimed message; what became of it, for :meth:`_record`."""
        if recipient is None:  # erased since the claim
            return _Outcome(message, campaign, {"status": "skipped", "skip_reason": "erased"})
        if not recipient.get(_CONSENT[message.channel]):
            # Consent withdrawn since the claim (an unsubscribe, say).
            return _Outcome(message, campaign, {"status": "skipped", "skip_reason": "no-consent"})
        unsubscribe_url = self.tracker.unsubscribe_url(message.id)
        try:
            subject, body = service.render_for(campaign, recipient, unsubscribe_url)
        except Exception as exc:  # the sandbox refused something at render time
            return _Outcome(
                message, campaign, {"status": "failed", "last_error": f"template: {exc}"}
            )
        text, html = self.tracker.decorate(
            message.id, campaign.body_template, body, html_part=message.channel == "email"
        )
        out = Outgoing(
            message.id,
            campaign.id,
            message.customer_id,
            message.channel,
            message.address or "",
            subject,
            text,
            html,
            unsubscribe_url,
        )
        try:
            if message.channel == "email":
                await self.buckets["email"].take()
                await self.email.send(smtp, out)
            else:
                await self.buckets["http"].take()
                await self.http.send(out)
        except TemporaryFailure as exc:
            if message.attempts >= self.settings.campaign_max_attempts:
                self.failed += 1
                return _Outcome(message, campaign, {"status": "failed", "last_error": str(exc)})
            self.retried += 1
            delay = self.settings.campaign_retry_backoff_s * 2 ** (message.attempts - 1)
            return _Outcome(
                message,
                campaign,
                {
                    "status": "queued",
                    "last_error": str(exc),
                    "not_before": self.now() + timedelta(seconds=delay),
                },
            )
        except PermanentFailure as exc:
            self.failed += 1
            return _Outcome(message, campaign, {"status": "failed", "last_error": str(exc)})
        # The timeline keeps what was said, not the recipient's signed unsubscribe link (with
        # it, anyone reading the timeline could unsubscribe the customer).
        if unsubscribe_url:
            body = body.replace(unsubscribe_url, "[unsubscribe link]")
        return _Outcome(message, campaign, {"status": "sent"}, sent=(out.address, subject, body))

    async def _record(self, session: AsyncSession, outcome: _Outcome) -> bool:
        """Write ``outcome`` (a sent message with its outbound interaction and event);
        ``True`` for a message recorded as sent. A message whose lease expired meanwhile was
        marked ``unconfirmed`` and stays so."""
        message, values = outcome.message, dict(outcome.values)
        if outcome.sent is None:
            await CampaignRepository(session).finish(message.id, values)
            return False
        now = self.now()
        interaction_id = uuid.uuid4()
        values |= {"sent_at": now, "interaction_id": interaction_id}
        if not await CampaignRepository(session).finish(message.id, values):
            return False
        address, subject, body = outcome.sent
        await service.record_sent(
            session,
            interaction_id=interaction_id,
            message_id=message.id,
            campaign=outcome.campaign,
            customer_id=message.customer_id,
            address=address,
            subject=subject,
            body=body,
            at=now,
        )
        return True


@dataclass(frozen=True)
class _Outcome:
    message: Claimed
    campaign: Campaign
    values: dict[str, Any]
    #: ``(address, subject, body)`` of a message the provider took.
    sent: tuple[str, str, str] | None = None


@asynccontextmanager
async def campaign_sender_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    sender = None
    if settings.campaign_sender_enabled:
        sender = CampaignSender(app.state.database, settings, consent=app.state.campaign_consent)
        app.state.campaign_sender = sender
    try:
        async with running_job(sender):
            yield
    finally:
        if sender is not None:
            await sender.close()


async def _main() -> None:
    """Run a sender until killed (the interval's loop, without the HTTP app)."""
    settings = Settings()
    database = Database(
        settings.database_url,
        schema=settings.schema_name,
        pool_size=settings.campaign_sender_concurrency + 2,
        application_name="interactions-campaign-sender",
    )
    sender = CampaignSender(database, settings)
    try:
        while True:
            try:
                await sender.run_once()
            except Exception as exc:  # the database may be down for a while
                logger.warning("campaign sender pass failed: %s", exc)
            await asyncio.sleep(settings.campaign_sender_interval_s)
    finally:
        await sender.close()
        await database.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main())
