"""Sending queued deliveries: signed, retried, logged, one endpoint never holding up another.

**Claiming.** A delivery is due when it is ``pending``, its ``next_attempt_at`` has come, its
endpoint is enabled, and no earlier delivery *of the same customer to the same endpoint* is
still pending or in flight — so per endpoint, each customer's events arrive in the order they
were queued, while other customers' events flow past a struggling one. (The price: a delivery
in retry holds back that customer's later events for that endpoint until it succeeds or is
given up, at most ~1.5 days with the default schedule.) Due deliveries are locked with
``FOR UPDATE SKIP LOCKED`` and marked ``delivering`` with a lease, so several gateway
replicas share the work without sending one twice; a sender that dies mid-request leaves its
lease to lapse, and the delivery is sent again (same ``webhook-id``: receivers deduplicate).

**Isolation.** At most ``outbound_concurrency`` requests are in flight, and at most
``outbound_per_endpoint`` per endpoint, each with a ``outbound_timeout_s`` deadline: an
endpoint that hangs holds only its own slots, the others keep theirs.

**Signing.** Standard Webhooks: ``webhook-id`` (stable across retries), ``webhook-timestamp``
and ``webhook-signature`` with one ``v1,`` signature per live secret (during a rotation's
overlap, the old and the new).

**Answers.** 2xx succeeds. ``410 Gone`` disables the endpoint (its deliveries wait, pending,
for it to be enabled again). Anything else — another status, a redirect (never followed), a
timeout, a refused or failed connection — is retried on the schedule, later if the endpoint's
``Retry-After`` asks for it; the last failure gives the delivery up (``failed``). An endpoint
without a success for ``outbound_disable_after_s`` is disabled, with the reason. Every
attempt is logged with status, latency and the first ``outbound_excerpt_bytes`` of the body
(the rest is never read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import aiohttp
from sqlalchemy import Table, and_, bindparam, case, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.models import OutboundAttempt, OutboundDelivery, OutboundEndpoint, OutboundMessage
from gateway.outbound.policy import next_delay, parse_retry_after
from gateway.outbound.safety import AddressPolicy, GuardedResolver, UnsafeAddress
from gateway.outbound.service import SecretBox, live_secrets
from shared import metrics, tracing
from shared.db import Database
from shared.standard_webhooks import sign

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)
USER_AGENT = "Rapport-Webhooks/1.0"

_DUE = text(
    """
    SELECT d.seq, d.endpoint_id FROM gateway.outbound_delivery d
    JOIN gateway.outbound_endpoint e ON e.id = d.endpoint_id AND e.enabled
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND NOT (d.endpoint_id = ANY(CAST(:full AS uuid[])))
      AND NOT EXISTS (
        SELECT 1 FROM gateway.outbound_delivery o
        WHERE o.endpoint_id = d.endpoint_id AND o.customer_id = d.customer_id
          AND o.seq < d.seq AND o.status IN ('pending', 'delivering'))
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
    """
)


@dataclass(frozen=True, slots=True)
class _Claim:
    seq: int
    endpoint_id: UUID
    message_id: str
    event_type: str
    attempts: int
    url: str
    payload: bytes
    traceparent: str | None
    secrets: list[str]


@dataclass(slots=True)
class _Result:
    outcome: str
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after: str | None = None


class Dispatcher:
    def __init__(
        self, database: Database, settings: Settings, box: SecretBox, policy: AddressPolicy
    ) -> None:
        self._database = database
        self._settings = settings
        self._box = box
        self._policy = policy
        self._wake = asyncio.Event()
        self._inflight: dict[UUID, int] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._finished: list[tuple[_Claim, _Result, float, datetime]] = []
        self._finished_ready = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._last_sweep = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._policy),
            limit=self._settings.outbound_concurrency,
            limit_per_host=0,
        )
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._settings.outbound_timeout_s),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        )
        self._task = asyncio.create_task(self._run(), name="outbound-dispatcher")
        self._recorder = asyncio.create_task(self._record_loop(), name="outbound-recorder")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending:
            # Requests in flight finish or time out; their leases cover a crash anyway.
            await asyncio.wait(self._sending, timeout=self._settings.outbound_timeout_s + 1)
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            if self._finished:
                with contextlib.suppress(Exception):
                    await self._record(self._finished)
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                claimed = await self.run_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbound sender: %s; again in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if claimed:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.outbound_poll_s)

    async def run_once(self) -> int:
        """Claim what is due and free slots allow, start sending it; returns how many."""
        room = self._settings.outbound_concurrency - len(self._sending)
        if room <= 0:
            await asyncio.wait(self._sending, return_when=asyncio.FIRST_COMPLETED)
            return 0
        claims = await self._claim(room)
        for claim in claims:
            self._inflight[claim.endpoint_id] = self._inflight.get(claim.endpoint_id, 0) + 1
            task = asyncio.create_task(self._send(claim))
            self._sending.add(task)
            task.add_done_callback(self._sent(claim.endpoint_id))
        return len(claims)

    def _sent(self, endpoint_id: UUID) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._sending.discard(task)
            left = self._inflight.get(endpoint_id, 1) - 1
            if left:
                self._inflight[endpoint_id] = left
            else:
                self._inflight.pop(endpoint_id, None)
            if not task.cancelled() and task.exception() is not None:
                logger.error("outbound: recording a delivery failed: %r", task.exception())
            self._wake.set()

        return done

    async def _claim(self, room: int) -> list[_Claim]:
        per_endpoint = self._settings.outbound_per_endpoint
        full = [e for e, n in self._inflight.items() if n >= per_endpoint]
        lease = timedelta(seconds=self._settings.outbound_timeout_s + 30)
        async with self._database.session() as session:
            if time.monotonic() - self._last_sweep > 5:
                # Deliveries of a sender that died mid-request go back in the queue.
                await session.execute(
                    update(OutboundDelivery)
                    .where(
                        OutboundDelivery.status == "delivering",
                        OutboundDelivery.lease_until < func.now(),
                    )
                    .values(status="pending", lease_until=None)
                )
                self._last_sweep = time.monotonic()
            candidates = await session.execute(_DUE, {"full": full, "limit": room * 4})
            chosen: list[int] = []
            taken: dict[UUID, int] = {}
            for seq, endpoint_id in candidates:
                used = self._inflight.get(endpoint_id, 0) + taken.get(endpoint_id, 0)
                if used < per_endpoint and len(chosen) < room:
                    chosen.append(seq)
                    taken[endpoint_id] = taken.get(endpoint_id, 0) + 1
            if not chosen:
                return []
            await session.execute(
                update(OutboundDelivery)
                .where(OutboundDelivery.seq.in_(chosen))
                .values(status="delivering", lease_until=datetime.now(UTC) + lease)
            )
            details = (
                await session.execute(
                    select(
                        OutboundDelivery.seq,
                        OutboundDelivery.endpoint_id,
                        OutboundDelivery.message_id,
                        OutboundMessage.event_type,
                        OutboundDelivery.attempts,
                        OutboundEndpoint.url,
                        OutboundMessage.payload,
                        OutboundMessage.traceparent,
                    )
                    .join(OutboundMessage, OutboundMessage.id == OutboundDelivery.message_id)
                    .join(OutboundEndpoint, OutboundEndpoint.id == OutboundDelivery.endpoint_id)
                    .where(OutboundDelivery.seq.in_(chosen))
                    .order_by(OutboundDelivery.seq)
                )
            ).all()
            secrets = await live_secrets(session, self._box, list({d.endpoint_id for d in details}))
        return [_Claim(*d, secrets=secrets.get(d.endpoint_id, [])) for d in details]

    async def _send(self, claim: _Claim) -> None:
        assert self._http is not None
        started = time.perf_counter()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": claim.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(
                sign(s, claim.message_id, timestamp, claim.payload) for s in claim.secrets
            ),
        }
        parent = {"traceparent": claim.traceparent} if claim.traceparent else {}
        attributes = {"http.request.method": "POST", "url.full": claim.url}
        try:
            self._policy.check_url(claim.url)
            with tracing.client_span(f"webhook {claim.event_type}", parent, attributes) as trace:
                async with self._http.post(
                    claim.url,
                    data=claim.payload,
                    headers={**headers, **trace},
                    allow_redirects=False,
                ) as response:
                    body = await response.content.read(self._settings.outbound_excerpt_bytes)
                    result = _Result(
                        outcome="succeeded" if 200 <= response.status < 300 else "failed",
                        status_code=response.status,
                        excerpt=body.decode("utf-8", errors="replace") or None,
                        retry_after=response.headers.get("Retry-After"),
                    )
                    if response.status == 410:
                        result.outcome = "gone"
                    elif 300 <= response.status < 400:
                        result.error = (
                            f"redirect to {response.headers.get('Location', '?')} not followed"
                        )
        except TimeoutError:
            result = _Result("timeout", error=f"no answer in {self._settings.outbound_timeout_s}s")
        except (UnsafeAddress, ValueError) as exc:
            result = _Result("refused", error=str(exc))
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, UnsafeAddress)
            result = _Result("refused" if refused else "failed", error=str(exc.os_error or exc))
        except (aiohttp.ClientError, OSError) as exc:
            result = _Result("failed", error=f"{type(exc).__name__}: {exc}")
        latency_ms = (time.perf_counter() - started) * 1000
        metrics.WEBHOOK_DELIVERIES.labels(result.outcome).inc()
        self._finished.append((claim, result, latency_ms, datetime.now(UTC)))
        self._finished_ready.set()

    async def _record_loop(self) -> None:
        """Record finished attempts in batches: one transaction for all that finished since
        the last one (a commit per attempt was most of a delivery's cost)."""
        while True:
            await self._finished_ready.wait()
            self._finished_ready.clear()
            while self._finished:
                batch, self._finished = self._finished, []
                try:
                    await self._record(batch)
                except asyncio.CancelledError:
                    self._finished[:0] = batch
                    raise
                except Exception as exc:
                    logger.warning("outbound: recording %d attempts failed: %s", len(batch), exc)
                    self._finished[:0] = batch
                    await asyncio.sleep(0.5)
                self._wake.set()

    def _outcome(self, claim: _Claim, result: _Result, now: datetime) -> dict[str, Any]:
        """The delivery's new state after this attempt."""
        delivery: dict[str, Any] = {
            "b_seq": claim.seq,
            "attempts": claim.attempts + 1,
            "last_status_code": result.status_code,
            "status": "pending",
            "next_attempt_at": now,
            "finished_at": None,
        }
        if result.outcome == "succeeded":
            delivery.update(status="succeeded", finished_at=now)
        elif result.outcome != "gone":  # gone: waits, pending, for the endpoint's return
            delay = next_delay(
                claim.attempts + 1,
                self._settings.outbound_retry_schedule_s,
                retry_after_s=parse_retry_after(result.retry_after, now),
            )
            if delay is None:
                delivery.update(status="failed", finished_at=now)
            else:
                delivery["next_attempt_at"] = now + delay
        return delivery

    async def _record(self, batch: list[tuple[_Claim, _Result, float, datetime]]) -> None:
        endpoint_ids = sorted({claim.endpoint_id for claim, *_ in batch})
        async with self._database.session() as session:
            # Endpoints first, in id order, like a DELETE of one (which cascades to its
            # deliveries): one lock order, no deadlock with an endpoint deleted meanwhile.
            live = set(
                await session.scalars(
                    select(OutboundEndpoint.id)
                    .where(OutboundEndpoint.id.in_(endpoint_ids))
                    .order_by(OutboundEndpoint.id)
                    .with_for_update(key_share=True)
                )
            )
            deliveries, attempts = [], []
            last: dict[UUID, tuple[_Result, datetime]] = {}
            for claim, result, latency_ms, at in batch:
                if claim.endpoint_id not in live:
                    continue  # deleted, with its queue
                deliveries.append(
                    {**self._outcome(claim, result, at), "b_message": claim.message_id}
                )
                attempts.append(
                    {
                        "delivery_seq": claim.seq,
                        "endpoint_id": claim.endpoint_id,
                        "message_id": claim.message_id,
                        "event_type": claim.event_type,
                        "attempted_at": at,
                        "outcome": result.outcome,
                        "status_code": result.status_code,
                        "latency_ms": round(latency_ms, 2),
                        "response_excerpt": result.excerpt,
                        "error": result.error,
                    }
                )
                last[claim.endpoint_id] = (result, at)
            if not deliveries:
                return
            table = cast(Table, OutboundDelivery.__table__)
            # A message erased meanwhile is never tried again. Checked inside the UPDATE: an
            # erase committed before it is seen here, and one committing after it waits on
            # this row and then finds it pending, and cancels it itself.
            erased_meanwhile = and_(
                bindparam("status") == "pending",
                exists().where(
                    OutboundMessage.id == bindparam("b_message"), OutboundMessage.erased
                ),
            )
            await session.execute(
                update(table)
                .where(table.c.seq == bindparam("b_seq"))
                .values(
                    status=case((erased_meanwhile, "cancelled"), else_=bindparam("status")),
                    attempts=bindparam("attempts"),
                    next_attempt_at=bindparam("next_attempt_at"),
                    finished_at=case(
                        (erased_meanwhile, func.now()), else_=bindparam("finished_at")
                    ),
                    last_status_code=bindparam("last_status_code"),
                    lease_until=None,
                ),
                deliveries,
            )
            await session.execute(insert(cast(Table, OutboundAttempt.__table__)), attempts)
            for endpoint_id, (result, at) in last.items():
                await self._endpoint_health(session, endpoint_id, result, at)

    async def _endpoint_health(
        self, session: AsyncSession, endpoint_id: UUID, result: _Result, now: datetime
    ) -> None:
        """After an endpoint's latest attempt: clear its failing streak, disable it on
        ``410``, or disable it when it has been failing for too long."""
        if result.outcome == "succeeded":
            await session.execute(
                update(OutboundEndpoint)
                .where(
                    OutboundEndpoint.id == endpoint_id, OutboundEndpoint.failing_since.is_not(None)
                )
                .values(failing_since=None)
            )
            return
        if result.outcome == "gone":
            await session.execute(
                update(OutboundEndpoint)
                .where(OutboundEndpoint.id == endpoint_id)
                .values(
                    enabled=False,
                    disabled_at=now,
                    disabled_reason=f"the endpoint answered 410 Gone at {now.isoformat()}",
                )
            )
            return
        failing_since, enabled = (
            await session.execute(
                update(OutboundEndpoint)
                .where(OutboundEndpoint.id == endpoint_id)
                .values(failing_since=func.coalesce(OutboundEndpoint.failing_since, now))
                .returning(OutboundEndpoint.failing_since, OutboundEndpoint.enabled)
            )
        ).one()
        cutoff = now - timedelta(seconds=self._settings.outbound_disable_after_s)
        if enabled and failing_since is not None and failing_since < cutoff:
            why = result.error or f"HTTP {result.status_code}"
            await session.execute(
                update(OutboundEndpoint)
                .where(OutboundEndpoint.id == endpoint_id)
                .values(
                    enabled=False,
                    disabled_at=now,
                    disabled_reason=f"no successful delivery since {failing_since.isoformat()};"
                    f" last attempt: {result.outcome} ({why[:200]})",
                )
            )
