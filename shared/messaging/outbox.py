"""Transactional outbox and its relay.

Write side: :func:`publish` inserts the event's envelope into the part's ``outbox`` table in
the caller's transaction, so the state change and its events commit (or vanish) together.
Each insert first takes a transaction-scoped advisory lock on the event's key (the customer
id), so for any one customer the outbox ``id`` order is the commit order — the relay can send
in ``id`` order and still keep per-customer ordering under concurrent writers.

Relay: one :class:`OutboxRelay` per process; across replicas of a part only the holder of a
session-level advisory lock relays (the others stand by), which keeps sends in order. It
sends a batch (up to ``batch_size`` rows, in id order), waits for the broker's
acknowledgement of all of them, then deletes exactly those rows. A crash or a broker outage
between send and delete means those rows are sent again later: delivery is at least once,
and consumers dedupe on the event id (the inbox).

Waking up: a commit that wrote events calls :meth:`OutboxRelay.wake` in-process (no SQL). A
process that is not the leader forwards the wake-up as a ``NOTIFY``, coalesced to at most one
per few milliseconds, outside the writers' transactions, so there is no NOTIFY per write and
no commit-lock contention. A slow poll covers anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import metrics, tracing
from shared.db import driver_connection, event_source, mark_outbox_written
from shared.events import Envelope, Event
from shared.messaging.kafka import Producer

__all__ = ["OutboxRelay", "copy_envelopes", "outbox_tables", "publish", "write_envelopes"]

logger = logging.getLogger(__name__)


def outbox_tables(metadata: MetaData, *, inbox: bool = True) -> None:
    """Add the ``outbox`` (and ``inbox``) tables to a part's metadata."""
    Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", Uuid, nullable=False),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    if inbox:
        Table(
            "inbox",
            metadata,
            Column("consumer", String(100), nullable=False),
            Column("event_id", Uuid, nullable=False),
            Column("event_type", String(200), nullable=False),
            Column(
                "processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
            PrimaryKeyConstraint("consumer", "event_id"),
        )


def _lock_namespace(schema: str) -> int:
    """A stable signed 32-bit id for the advisory locks of one schema's outbox."""
    return zlib.crc32(f"rapport.outbox.{schema}".encode()) - 2**31


def _insert_sql(schema: str) -> str:
    # The lock subquery runs before the identity value is drawn, so ids of one key are drawn
    # in lock order, i.e. in commit order.
    return (
        f"INSERT INTO {schema}.outbox (event_id, topic, key, headers, payload) "
        "SELECT $1, $2, $3, $4::jsonb, $5 "
        f"FROM (SELECT pg_advisory_xact_lock({_lock_namespace(schema)}, hashtext($3))) AS _lock"
    )


async def publish(session: AsyncSession, *events: Event, **extensions: str) -> list[Envelope]:
    """Queue ``events`` in the session's transaction; they are sent once it commits."""
    if not events:
        return []
    source, schema = event_source(session)
    with tracing.producer_span([e.topic for e in events], schema, len(events)) as trace:
        headers = {**trace, **extensions}
        envelopes = [Envelope.wrap(e, source=source, extensions=headers) for e in events]
        await write_envelopes(await driver_connection(session), schema, envelopes)
    mark_outbox_written(session)
    return envelopes


async def write_envelopes(
    driver: asyncpg.Connection, schema: str, envelopes: list[Envelope]
) -> None:
    """Insert outbox rows on a bare driver connection, inside the caller's transaction.

    For hot paths that bypass the ORM session; the caller commits and then calls
    :meth:`shared.db.Database.outbox_committed` so the relay wakes up.
    """
    await driver.executemany(
        _insert_sql(schema),
        [
            (
                env.id,
                env.topic,
                env.subject,
                json.dumps(env.header_pairs()),
                env.data,
            )
            for env in sorted(envelopes, key=lambda e: e.subject)
        ],
    )


async def copy_envelopes(session: AsyncSession, events: Sequence[Event]) -> None:
    """Queue many events with one COPY, in the session's transaction, without the per-key lock.

    Only for events whose keys no concurrent transaction can write — those of aggregates
    created in this very transaction (their ids are not visible to anyone before it commits),
    such as the customers a bulk import creates. For any other event use :func:`publish`.
    """
    if not events:
        return
    source, schema = event_source(session)
    driver = await driver_connection(session)
    with tracing.producer_span([e.topic for e in events], schema, len(events)) as trace:
        await driver.copy_records_to_table(
            "outbox",
            schema_name=schema,
            columns=["event_id", "topic", "key", "headers", "payload"],
            records=[
                (env.id, env.topic, env.subject, json.dumps(env.header_pairs()), env.data)
                for env in (Envelope.wrap(e, source=source, extensions=trace) for e in events)
            ],
        )
    mark_outbox_written(session)


class OutboxRelay:
    """Moves committed outbox rows to Kafka, in order, at least once."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: Producer,
        *,
        schema: str,
        batch_size: int = 2_000,
        poll_interval: float = 0.5,
        send_timeout: float = 30.0,
        sample_interval: float = 10.0,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._schema = schema
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._send_timeout = send_timeout
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._notify_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.is_leader = False
        self._channel = f"rapport_outbox_{schema}"
        self._lock_key = _lock_namespace(schema)
        self._sample_interval = sample_interval
        self._sample_task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")
        self._sample_task = asyncio.create_task(
            self._sample(), name=f"outbox-sample-{self._schema}"
        )

    async def stop(self, flush_timeout: float = 0.0) -> None:
        """Stop relaying. With a ``flush_timeout``, the leader first sends every committed row
        (until the outbox is empty or the time is up), so a part stopped in order leaves no
        events waiting for its next start; whatever is left is sent by the next leader."""
        self._stopping = True
        self._wakeup.set()
        if flush_timeout > 0 and self._task is not None and not self._task.done():
            try:
                async with asyncio.timeout(flush_timeout):
                    await asyncio.shield(self._task)
            except TimeoutError:
                logger.warning("outbox relay %s: not flushed in %.1fs", self._schema, flush_timeout)
            except Exception as exc:
                logger.warning("outbox relay %s: flush failed: %s", self._schema, exc)
        for task in (self._task, self._notify_task, self._sample_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def wake(self) -> None:
        """A transaction wrote events: relay now (or tell the leader to)."""
        if self.is_leader:
            self._wakeup.set()
        elif self._notify_task is None or self._notify_task.done():
            self._notify_task = asyncio.create_task(self._notify_leader())

    async def _notify_leader(self) -> None:
        await asyncio.sleep(0.002)  # coalesce a burst of commits into one NOTIFY
        try:
            async with self._engine.connect() as conn:
                driver = await driver_connection(conn, transactional=False)
                await driver.execute(f"NOTIFY {self._channel}")
        except (OSError, asyncpg.PostgresError) as exc:
            logger.debug("outbox notify failed: %s", exc)

    # --- the loop -------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                await self._lead()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.is_leader = False
                if self._stopping:
                    logger.warning(
                        "outbox relay %s: %s; left for the next leader", self._schema, exc
                    )
                    return
                logger.warning("outbox relay %s: %s; retrying in %.1fs", self._schema, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _lead(self) -> None:
        async with self._engine.connect() as conn:
            driver = await driver_connection(conn, transactional=False)
            if not await driver.fetchval("SELECT pg_try_advisory_lock($1, 0)", self._lock_key):
                self.is_leader = False
                with contextlib.suppress(TimeoutError):  # stop() ends the wait; the leader flushes
                    async with asyncio.timeout(2.0):
                        await self._wakeup.wait()
                return
            self.is_leader = True
            await driver.add_listener(self._channel, self._on_notify)
            try:
                while True:
                    sent = await self.relay_once(driver)
                    if sent > 0 and self._stopping:
                        continue  # flushing: until the outbox is empty
                    if sent >= self._batch_size:
                        continue
                    if self._stopping:
                        return
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_interval):
                            await self._wakeup.wait()
                    self._wakeup.clear()
            finally:
                self.is_leader = False
                with contextlib.suppress(Exception):
                    await driver.remove_listener(self._channel, self._on_notify)
                    await driver.execute("SELECT pg_advisory_unlock($1, 0)", self._lock_key)

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def relay_once(self, driver: asyncpg.Connection) -> int:
        """Send one batch; returns how many rows were sent and deleted."""
        rows: Sequence[asyncpg.Record] = await driver.fetch(
            f"SELECT id, topic, key, headers, payload FROM {self._schema}.outbox "
            "ORDER BY id LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        started = time.perf_counter()
        client = await self._producer.ensure_started()
        try:
            async with asyncio.timeout(self._send_timeout):
                futures = [
                    await client.send(
                        row["topic"],
                        value=row["payload"],
                        key=row["key"].encode(),
                        headers=[(k, v.encode()) for k, v in _pairs(row["headers"])],
                    )
                    for row in rows
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            # The rows stay and are sent again, through a new client: this one may be
            # unable to send anything any more (see Producer.replace).
            await self._producer.replace(client, exc)
            raise
        await driver.execute(
            f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows],
        )
        metrics.OUTBOX_SENT.labels(self._schema).inc(len(rows))
        metrics.OUTBOX_BATCH_SECONDS.labels(self._schema).observe(time.perf_counter() - started)
        return len(rows)

    async def _sample(self) -> None:
        """Backlog and oldest-row age, every ``sample_interval`` seconds, whether or not this
        process leads and whether or not the broker is up — a stuck relay is exactly when
        these gauges matter."""
        while True:
            try:
                async with self._engine.connect() as conn:
                    driver = await driver_connection(conn, transactional=False)
                    count, age = await driver.fetchrow(
                        "SELECT count(*), "
                        "coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 "
                        f"FROM {self._schema}.outbox"
                    )
                metrics.OUTBOX_BACKLOG.labels(self._schema).set(count)
                metrics.OUTBOX_OLDEST_AGE.labels(self._schema).set(age)
            except (OSError, asyncpg.PostgresError, SQLAlchemyError) as exc:
                logger.debug("outbox %s: cannot sample the backlog: %s", self._schema, exc)
            await asyncio.sleep(self._sample_interval)


def _pairs(headers: str | list[list[str]]) -> list[list[str]]:
    # SQLAlchemy registers a jsonb codec on its asyncpg connections (decoded lists); a bare
    # asyncpg connection returns the JSON text.
    return json.loads(headers) if isinstance(headers, str) else headers
