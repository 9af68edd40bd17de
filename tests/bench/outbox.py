"""Outbox benchmark: commit → broker acknowledgement latency at a steady 1,000 events/s, and
relay throughput on a backlog, each beside a raw aiokafka producer measured in the same run
against the same broker.

Latency is taken from the moment ``commit`` returns to the moment the broker acknowledges the
event (the relay's produce future resolves). The raw producer's latency is ``send_and_wait``
of one message at the same pace. Throughput: the relay drains a pre-filled backlog (select,
send, wait for acks, delete); the raw producer sends the same number of same-sized messages
with the same pipelining. Infrastructure is started like the tests start it (Apache Kafka
when Java and Maven are present, else Tansu; embedded PostgreSQL) unless
``KAFKA_BOOTSTRAP_SERVERS`` / ``BENCH_DATABASE_URL`` are set.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from services.customer360.config import Settings
from shared.db import Database
from shared.devstack import ApacheKafka, EmbeddedPostgres, TansuBroker
from shared.events import CustomerUpdated
from shared.messaging import OutboxRelay, Producer, ensure_topics, publish
from shared.migrate import upgrade
from tests.bench import table

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".rapport" / "bench"
TOPIC = "rapport.customer.v1"
RATE = 1_000
LATENCY_SECONDS = float(os.environ.get("BENCH_OUTBOX_SECONDS", "8"))
BACKLOG = int(os.environ.get("BENCH_OUTBOX_BACKLOG", "60000"))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _event(customer: uuid.UUID) -> CustomerUpdated:
    # ~470 bytes on the wire with headers, like the field notes' messages.
    return CustomerUpdated(
        customer_id=customer,
        changes={
            "display_name": "张伟 Wei Zhang",
            "tags": ["vip", "newsletter"],
            "note": "x" * 120,
        },
        updated_at=datetime.now(UTC),
    )


class _AckTimes:
    """Wraps the relay's producer so every acknowledgement is timestamped by event id."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.acked: dict[str, float] = {}

    async def ensure_started(self) -> Any:
        outer = self
        real = await self._producer.ensure_started()

        class Client:
            async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
                future = await real.send(topic, **kwargs)
                event_id = dict(kwargs["headers"])["ce_id"].decode()
                future.add_done_callback(
                    lambda _: outer.acked.setdefault(event_id, time.perf_counter())
                )
                return future

            async def replace(self, reason: BaseException) -> None:
                await outer._producer.replace(real, reason)

        return Client()

    async def replace(self, failed: Any, reason: BaseException) -> None:
        await failed.replace(reason)


async def _paced(rate: int, seconds: float, action: Callable[[int], Awaitable[None]]) -> None:
    """Call ``action`` ``rate`` times a second, spread over ``workers`` concurrent tasks."""
    workers = 16
    per_worker = rate / workers
    total = int(rate * seconds)
    start = time.perf_counter()

    async def worker(w: int) -> None:
        for i in range(w, total, workers):
            due = start + (i // workers) / per_worker
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await action(i)

    await asyncio.gather(*(worker(w) for w in range(workers)))


async def bench_relay_latency(database: Database, settings: Settings) -> list[float]:
    producer = Producer(settings, client_id="bench-relay")
    acks = _AckTimes(producer)
    relay = OutboxRelay(database.engine, acks, schema="customer360", poll_interval=0.5)  # type: ignore[arg-type]
    database.on_outbox_commit(relay.wake)
    committed: dict[str, float] = {}
    relay.start()
    try:
        while not relay.is_leader:
            await asyncio.sleep(0.01)

        async def write(i: int) -> None:
            async with database.session() as session:
                (envelope,) = await publish(session, _event(uuid.uuid4()))
            committed[str(envelope.id)] = time.perf_counter()

        await _paced(RATE, LATENCY_SECONDS, write)
        async with asyncio.timeout(30):
            while len(acks.acked) < len(committed):
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await producer.stop()
    return [(acks.acked[i] - committed[i]) * 1000 for i in committed]


async def bench_raw_latency(bootstrap: str, idempotence: bool, payload: bytes) -> list[float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotence, linger_ms=0
    )
    await producer.start()
    latencies: list[float] = []
    try:

        async def send(i: int) -> None:
            started = time.perf_counter()
            await producer.send_and_wait(TOPIC, value=payload, key=str(uuid.uuid4()).encode())
            latencies.append((time.perf_counter() - started) * 1000)

        await _paced(RATE, LATENCY_SECONDS, send)
    finally:
        await producer.stop()
    return latencies


async def bench_relay_throughput(database: Database, settings: Settings) -> float:
    async with database.session() as session:
        await session.execute(text("DELETE FROM customer360.outbox"))
    customers = [uuid.uuid4() for _ in range(1_000)]
    for offset in range(0, BACKLOG, 2_000):
        async with database.session() as session:
            await publish(
                session,
                *[_event(customers[i % len(customers)]) for i in range(offset, offset + 2_000)],
            )
    producer = Producer(settings, client_id="bench-throughput")
    relay = OutboxRelay(database.engine, producer, schema="customer360", batch_size=5_000)
    started = time.perf_counter()
    relay.start()
    try:
        while True:
            async with database.session() as session:
                left = (
                    await session.execute(text("SELECT count(*) FROM customer360.outbox"))
                ).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        elapsed = time.perf_counter() - started
        await relay.stop()
        await producer.stop()
    return BACKLOG / elapsed


async def bench_raw_throughput(bootstrap: str, idempotence: bool, payload: bytes) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotence,
        linger_ms=0,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        keys = [str(uuid.uuid4()).encode() for _ in range(1_000)]
        headers = [("ce_type", b"rapport.customer.updated.v1"), ("ce_id", b"x" * 36)]
        started = time.perf_counter()
        for offset in range(0, BACKLOG, 5_000):
            futures = [
                await producer.send(TOPIC, value=payload, key=keys[i % 1_000], headers=headers)
                for i in range(offset, offset + 5_000)
            ]
            await asyncio.gather(*futures)
        return BACKLOG / (time.perf_counter() - started)
    finally:
        await producer.stop()


def _start_infra() -> tuple[str, str, bool, list[Any], str]:
    started: list[Any] = []
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    idempotence = True
    broker_name = "external broker"
    if not bootstrap:
        broker: ApacheKafka | TansuBroker
        if ApacheKafka.available():
            broker = ApacheKafka(STATE / "kafka")
            broker_name = f"Apache Kafka {broker.version} (KRaft, single node)"
        else:
            broker, idempotence = TansuBroker(STATE / "tansu"), False
            broker_name = "Tansu (embedded, memory storage)"
        broker.start()
        started.append(broker)
        bootstrap = broker.bootstrap_servers
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(STATE / "pg")
        postgres.start()
        started.append(postgres)
        postgres.drop_database("rapport_bench")
        postgres.create_database("rapport_bench")
        url = postgres.sqlalchemy_url("rapport_bench")
    return bootstrap, url, idempotence, started, broker_name


async def main() -> None:
    bootstrap, url, idempotence, started, broker_name = await asyncio.to_thread(_start_infra)
    try:
        settings = Settings(
            database_url=url,
            kafka_bootstrap_servers=bootstrap,
            kafka_idempotent_producer=idempotence,
            database_pool_size=20,
        )
        await ensure_topics(settings, [TOPIC])
        await asyncio.to_thread(upgrade, "customer360", "head", url)
        database = Database(url, schema="customer360", pool_size=20, application_name="bench")
        payload = _event(uuid.uuid4()).model_dump_json().encode()
        try:
            print(f"outbox benchmark — broker: {broker_name}; PostgreSQL: {url.split('@')[-1]}")
            print(f"latency: {RATE} events/s for {LATENCY_SECONDS}s; throughput: {BACKLOG} events")
            raw_lat = await bench_raw_latency(bootstrap, idempotence, payload)
            relay_lat = await bench_relay_latency(database, settings)
            raw_tp = await bench_raw_throughput(bootstrap, idempotence, payload)
            relay_tp = await bench_relay_throughput(database, settings)
        finally:
            await database.dispose()
    finally:
        for process in reversed(started):
            await asyncio.to_thread(process.stop)

    rows = [
        ("commit→ack p50 (ms)", _pct(relay_lat, 0.50), _pct(raw_lat, 0.50), "≤ 20 at p99"),
        ("commit→ack p99 (ms)", _pct(relay_lat, 0.99), _pct(raw_lat, 0.99), "≤ 20"),
        ("commit→ack mean (ms)", statistics.fmean(relay_lat), statistics.fmean(raw_lat), ""),
        ("throughput (events/s)", relay_tp, raw_tp, "≥ 20,000"),
    ]
    print()
    print(
        f"| {'metric':<24} | {'outbox relay':>12} | {'raw aiokafka':>12} | {'relay/raw':>9} | goal"
    )
    print(f"| {'-' * 24} | {'-' * 12} | {'-' * 12} | {'-' * 9} | ----")
    for name, relay, raw, goal in rows:
        print(f"| {name:<24} | {relay:>12,.1f} | {raw:>12,.1f} | {relay / raw:>9.2f} | {goal}")
    print(f"\nevents measured: latency {len(relay_lat)} relay / {len(raw_lat)} raw")
    p99, raw_p99 = _pct(relay_lat, 0.99), _pct(raw_lat, 0.99)
    table.record(
        "outbox: commit → broker ack p99",
        f"{p99:.1f} ms",
        raw=f"{raw_p99:.1f} ms (raw aiokafka)",
        ratio=p99 / raw_p99,
        goal="≤ 20 ms",
        met=p99 <= 20,
    )
    table.record(
        "outbox: relay throughput",
        f"{relay_tp:,.0f} ev/s",
        raw=f"{raw_tp:,.0f} ev/s (raw aiokafka)",
        ratio=relay_tp / raw_tp,
        goal="≥ 20,000 ev/s",
        met=relay_tp >= 20_000,
    )
