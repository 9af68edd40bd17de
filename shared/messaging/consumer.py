"""The consumer runner: Kafka → handler → PostgreSQL, exactly-once in effect.

For each message, in partition order:

1. Decode the CloudEvents envelope. A message that is not a valid Rapport event cannot
   succeed later either: it goes straight to the dead-letter topic.
2. In one transaction: claim the event id in the ``inbox`` (``INSERT … ON CONFLICT DO
   NOTHING``) and run the handler. A claim that finds the id already there means the event was
   applied before (a redelivery): it is skipped. The claim and the effect commit together, so
   an event is applied exactly once however often Kafka delivers it.
3. Offsets are committed only after the transactions of the messages before them committed.

Consecutive messages of a partition share a transaction (up to ``group_size``): each still
claims its own inbox row and runs its own handler, in order, so an event's effect and its
claim still commit together — but one commit (and one connection check-out) serves many
events, which is most of the per-event cost. If an event of a group fails, the group is
rolled back; the events before it are applied again as a group, the failing one alone with
the retries and dead-lettering below, and the rest as a group: partition order is kept, and
a poison message never takes its neighbours down with it. (A handler may thus run more than
once for an event whose group was rolled back; only its database effects are exactly-once,
as with any retry.)

Work that only needs doing once per transaction (rescoring a customer that three events of a
group touched, say) can be deferred: a handler adds to :func:`deferred` and a hook registered
with :meth:`Subscriptions.at_commit` does it once, in the same transaction, after the group's
last handler. Outside the runner (a handler called directly) :func:`deferred` is ``None`` and
the handler acts at once, so its effect never depends on who called it.

Failures: a handler error is retried ``max_retries`` times with exponential backoff, then the
message goes to the group's dead-letter topic (``rapport.dlq.<group>``) with the error in its
headers, and the partition moves on. An infrastructure error (database unreachable) is not
the message's fault: it is retried without limit and without dead-lettering, since every
message would fail the same way; the partition waits and nothing is lost. Nor is a deadlock
with a concurrent transaction (events about one customer arrive on several topics, so two
consumers may lock the same rows in different orders): it is applied again after a jittered
pause, never dead-lettered.

Stalls: a watchdog restarts the consumer (a new client, a new group membership, reading
again from the last commit) when it has been stuck in one step — a fetch, a commit, one
event — for ``stall_timeout_s``, and logs where it was stuck. A client can be left unable to
make progress by a broker crash; an infrastructure wait or a retry counts as progress.

Stopping (:meth:`ConsumerRunner.stop` with a timeout, at SIGTERM): the event being applied
finishes, the offsets of applied events are committed, the consumer leaves its group; a
replacement starts exactly where this one stopped, with nothing to skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry.trace import StatusCode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import metrics, tracing
from shared.db import Database, database_unavailable, lost_a_race
from shared.events import Envelope, EnvelopeError, Event, dead_letter_topic
from shared.messaging.kafka import Producer

__all__ = ["CommitHook", "ConsumerRunner", "Handler", "Subscriptions", "deferred"]

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
CommitHook = Callable[[AsyncSession, set[Any]], Awaitable[None]]

_DEFERRED = "rapport.deferred"


def deferred(session: AsyncSession, hook: CommitHook) -> set[Any] | None:
    """The set of work ``hook`` will do before ``session`` commits; ``None`` when the session
    is not the consumer runner's (the caller must then do the work itself, now)."""
    pending: dict[CommitHook, set[Any]] | None = session.info.get(_DEFERRED)
    if pending is None:
        return None
    return pending.setdefault(hook, set())


class Subscriptions:
    """What one part consumes: event type → handlers. The one place a part lists them.

    Several handlers of one event type run in registration order, in one transaction.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._topics: set[str] = set()
        self._hooks: list[CommitHook] = []

    def on(self, event: type[E]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._handlers.setdefault(event.event_type, []).append(handler)
            self._topics.add(event.topic)
            return handler

        return register

    def at_commit(self, hook: CommitHook) -> CommitHook:
        """Register ``hook``: run once per consumer transaction, after its handlers, with the
        work they added to :func:`deferred` (skipped when they added none)."""
        self._hooks.append(hook)
        return hook

    async def run_deferred(self, session: AsyncSession) -> None:
        """Run the hooks of the work deferred in ``session`` (the runner calls this)."""
        pending: dict[CommitHook, set[Any]] = session.info.get(_DEFERRED) or {}
        for hook in self._hooks:
            work = pending.pop(hook, None)
            if work:
                await hook(session, work)

    def handlers(self, event_type: str) -> tuple[Handler, ...]:
        return tuple(self._handlers.get(event_type, ()))

    def handler_for(self, event_type: str) -> Handler | None:
        """One callable running every handler of ``event_type`` (``None``: not consumed)."""
        handlers = self._handlers.get(event_type)
        if not handlers:
            return None
        if len(handlers) == 1:
            return handlers[0]

        async def all_of(session: AsyncSession, event: Any, envelope: Envelope) -> None:
            for handler in handlers:
                await handler(session, event, envelope)

        return all_of

    @property
    def topics(self) -> list[str]:
        return sorted(self._topics)

    def __bool__(self) -> bool:
        return bool(self._handlers)


class ConsumerStalled(Exception):
    """The watchdog gave up on a consumer that made no progress."""


class _Poison(Exception):
    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts


class ConsumerRunner:
    """Runs one consumer group's subscriptions until stopped."""

    def __init__(
        self,
        *,
        group: str,
        bootstrap_servers: str,
        database: Database,
        subscriptions: Subscriptions,
        producer: Producer,
        max_retries: int = 3,
        retry_backoff: float = 0.2,
        fetch_max_wait_ms: int = 20,
        session_timeout_ms: int = 10_000,
        consumer_options: Mapping[str, Any] | None = None,
        group_size: int = 100,
        stall_timeout_s: float = 60.0,
    ) -> None:
        self.group = group
        self._bootstrap = bootstrap_servers
        self._database = database
        self._subscriptions = subscriptions
        self._producer = producer
        self._max_retries = max_retries
        self._retry_backoff = retry_backoff
        self._group_size = group_size
        self._stall_timeout_s = stall_timeout_s
        self._last_progress = time.monotonic()
        #: Times the watchdog restarted a stuck consumer.
        self.stalls = 0
        self._options = {
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(session_timeout_ms // 4, 500),
            **(consumer_options or {}),
        }
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.assigned = asyncio.Event()
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def stop(self, timeout: float = 0.0) -> None:
        """Stop consuming. With a ``timeout``, stop in order first: finish the event being
        applied, commit the offsets of everything applied, and leave the group (so its
        partitions move to another member at once); past the timeout, cancel. Cancelling is
        safe too — uncommitted events are redelivered and the inbox skips them — it only
        costs redeliveries."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        if timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
                return
            except TimeoutError:
                logger.warning(
                    "consumer %s: not stopped in %.1fs; cancelling it at:\n%s",
                    self.group,
                    timeout,
                    awaiting(task),
                )
            except Exception as exc:
                logger.warning("consumer %s: stopped with an error: %s", self.group, exc)
                return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                *self._subscriptions.topics,
                bootstrap_servers=self._bootstrap,
                group_id=self.group,
                client_id=f"{self.group}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **self._options,
            )
            try:
                await consumer.start()
                self._consumer = consumer
                backoff = 0.5
                await self._watched(consumer)
            except asyncio.CancelledError:
                raise
            except ConsumerStalled as exc:
                self.stalls += 1
                metrics.CONSUMER_STALLS.labels(self.group).inc()
                logger.error("consumer %s: %s; restarting it", self.group, exc)
            except Exception as exc:
                logger.warning("consumer %s: %s; restarting in %.1fs", self.group, exc, backoff)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stopping.wait()
                backoff = min(backoff * 2, 10.0)
            finally:
                self._consumer = None
                self.assigned.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def _progress(self) -> None:
        self._last_progress = time.monotonic()

    async def _watched(self, consumer: AIOKafkaConsumer) -> None:
        """:meth:`_consume`, given up (:class:`ConsumerStalled`) when it has made no progress
        for ``stall_timeout_s``; what it had applied is committed, the rest is read again."""
        self._progress()
        consume = asyncio.create_task(self._consume(consumer), name=f"consume-{self.group}")
        try:
            while True:
                done, _ = await asyncio.wait({consume}, timeout=self._stall_timeout_s / 4)
                if done:
                    return consume.result()
                stuck = time.monotonic() - self._last_progress
                if stuck > self._stall_timeout_s:
                    raise ConsumerStalled(
                        f"no progress for {stuck:.0f}s, stuck at:\n{awaiting(consume)}"
                    )
        finally:
            if not consume.done():
                consume.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consume

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            self._progress()
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            if consumer.assignment():
                self.assigned.set()
            for tp, records in batches.items():
                last = await self._process_all(records)
                if last is None:
                    break
                try:
                    await consumer.commit({tp: last.offset + 1})
                except CommitFailedError as exc:
                    # A rebalance took the partition away; the new owner re-reads from the
                    # last commit and the inbox skips what we already applied.
                    logger.info("consumer %s: commit lost to a rebalance: %s", self.group, exc)
                self._record_lag(consumer, tp, last.offset)

    def _record_lag(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(
                max(highwater - offset - 1, 0)
            )

    async def _process_all(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> ConsumerRecord[bytes, bytes] | None:
        """Apply one partition's records in order, consecutive ones in shared transactions;
        returns the last record dealt with (its offset + 1 may be committed), ``None`` if
        stopping before the first. Stopping leaves the rest to be re-read from the commit."""
        group: list[tuple[ConsumerRecord[bytes, bytes], Envelope, Handler]] = []
        last: ConsumerRecord[bytes, bytes] | None = None
        for record in records:
            if self._stopping.is_set():
                break
            try:
                envelope = Envelope.from_kafka(record.topic, record.value, record.headers)
            except EnvelopeError as exc:
                await self._apply_group(group)
                group = []
                await self._dead_letter(record, exc, attempts=1)
                last = record
                continue
            handler = self._subscriptions.handler_for(envelope.type)
            if handler is None:
                metrics.CONSUMER_EVENTS.labels(self.group, envelope.type, "ignored").inc()
            else:
                group.append((record, envelope, handler))
            last = record
            if len(group) >= self._group_size:
                await self._apply_group(group)
                group = []
        await self._apply_group(group)
        return last

    async def _apply_group(
        self, group: list[tuple[ConsumerRecord[bytes, bytes], Envelope, Handler]]
    ) -> None:
        """Apply ``group`` in one transaction. If event k fails, all is rolled back; then the
        events before k are applied again as a group, k alone (retries, dead letter), and the
        rest as a group — order kept, and one bad event costs its group one extra try. If the
        deferred work fails (no event to blame), each event is applied alone."""
        while len(group) > 1:
            failed_at: int | None = 0
            try:
                async with self._database.session() as session:
                    session.info[_DEFERRED] = {}
                    outcomes = []
                    for index, (record, envelope, handler) in enumerate(group):
                        failed_at = index
                        with self._span(record, envelope) as span:
                            outcome = await self._apply_in(session, handler, envelope)
                            if span is not None:
                                span.set_attribute("rapport.outcome", outcome)
                            outcomes.append(outcome)
                    failed_at = None
                    await self._subscriptions.run_deferred(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failed_at is None:
                    logger.info(
                        "consumer %s: deferred work of a group of %d failed (%s); applying "
                        "its events one by one",
                        self.group,
                        len(group),
                        exc,
                    )
                    for item in group:
                        await self._process(*item)
                    return
                logger.info(
                    "consumer %s: event %d of a group of %d failed (%s); applying it alone",
                    self.group,
                    failed_at + 1,
                    len(group),
                    exc,
                )
                await self._apply_group(group[:failed_at])
                await self._process(*group[failed_at])
                group = group[failed_at + 1 :]
                continue
            for (_, envelope, _), outcome in zip(group, outcomes, strict=True):
                metrics.CONSUMER_EVENTS.labels(self.group, envelope.type, outcome).inc()
            return
        if group:
            await self._process(*group[0])

    def _span(self, record: ConsumerRecord[bytes, bytes], envelope: Envelope) -> Any:
        return tracing.consumer_span(
            envelope.extensions,
            group=self.group,
            topic=record.topic,
            event_type=envelope.type,
            event_id=str(envelope.id),
        )

    async def _process(
        self, record: ConsumerRecord[bytes, bytes], envelope: Envelope, handler: Handler
    ) -> None:
        with self._span(record, envelope) as span:
            try:
                outcome = await self._apply_with_retries(handler, envelope)
            except _Poison as poison:
                if span is not None:
                    span.set_status(StatusCode.ERROR, "dead-lettered")
                    span.record_exception(poison.cause)
                await self._dead_letter(record, poison.cause, attempts=poison.attempts)
                return
            if span is not None:
                span.set_attribute("rapport.outcome", outcome)
        metrics.CONSUMER_EVENTS.labels(self.group, envelope.type, outcome).inc()

    async def _apply_with_retries(self, handler: Handler, envelope: Envelope) -> str:
        attempt = 0
        infra_backoff = self._retry_backoff
        while True:
            attempt += 1
            self._progress()  # waiting for the database or retrying is not being stuck
            try:
                return await self._apply(handler, envelope)
            except asyncio.CancelledError:
                raise
            except EnvelopeError as exc:
                raise _Poison(exc, attempt) from exc
            except Exception as exc:
                if database_unavailable(exc):
                    attempt -= 1  # not the message's fault: wait for the database
                    logger.warning("consumer %s: infrastructure error: %s", self.group, exc)
                    await asyncio.sleep(infra_backoff)
                    infra_backoff = min(infra_backoff * 2, 10.0)
                    continue
                if lost_a_race(exc):
                    # a deadlock with a concurrent transaction (another partition's events
                    # about the same customer): not the message's fault either
                    attempt -= 1
                    logger.info("consumer %s: %s; applying it again", self.group, exc)
                    # jitter, so the two do not collide again in step
                    await asyncio.sleep(random.uniform(0, self._retry_backoff * 4))  # noqa: S311
                    continue
                if attempt > self._max_retries:
                    raise _Poison(exc, attempt) from exc
                logger.warning(
                    "consumer %s: %s failed (attempt %d): %s",
                    self.group,
                    envelope.type,
                    attempt,
                    exc,
                )
                await asyncio.sleep(self._retry_backoff * 2 ** (attempt - 1))

    async def _apply(self, handler: Handler, envelope: Envelope) -> str:
        async with self._database.session() as session:
            session.info[_DEFERRED] = {}
            outcome = await self._apply_in(session, handler, envelope)
            await self._subscriptions.run_deferred(session)
            return outcome

    async def _apply_in(self, session: AsyncSession, handler: Handler, envelope: Envelope) -> str:
        """Claim the event in the inbox and run its handler, in ``session``'s transaction."""
        claimed = await session.execute(
            text(
                f"INSERT INTO {self._database.schema}.inbox (consumer, event_id, event_type) "
                "VALUES (:consumer, :event_id, :event_type) ON CONFLICT DO NOTHING "
                "RETURNING event_id"
            ),
            {"consumer": self.group, "event_id": envelope.id, "event_type": envelope.type},
        )
        self._progress()
        if claimed.first() is None:
            return "duplicate"
        event = envelope.event()
        await handler(session, event, envelope)
        return "applied"

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], exc: BaseException, *, attempts: int
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        logger.error(
            "consumer %s: dead-lettering %s[%d]@%d after %d attempt(s): %s",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )
        headers = [
            *record.headers,
            ("dlq_error", error.encode()),
            ("dlq_error_type", type(exc).__name__.encode()),
            ("dlq_traceback", "".join(traceback.format_exception(exc))[-4000:].encode()),
            ("dlq_consumer_group", self.group.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        producer = await self._producer.ensure_started()
        # Awaited before the offset is committed: a dead letter is never lost either.
        try:
            await producer.send_and_wait(
                dead_letter_topic(self.group), value=record.value, key=record.key, headers=headers
            )
        except KafkaError as exc:
            await self._producer.replace(producer, exc)
            raise
        event_type = dict(record.headers).get("ce_type", b"unknown").decode(errors="replace")
        metrics.DEAD_LETTERS.labels(self.group, event_type).inc()


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where ``task`` is suspended: its chain of awaits, outermost first, down to the future
    it waits on (``Task.get_stack`` gives only the outermost frame of a suspended task)."""
    lines: list[str] = []
    current: Any = task.get_coro()
    while current is not None:
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        if frame is None:
            lines.append(f"  waiting on {current!r}"[:500])
            break
        lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
    return "\n".join(lines)
