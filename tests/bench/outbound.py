"""Outbound webhook benchmark: fan-out to 10 healthy local endpoints, then the same with an
11th endpoint that never answers.

The gateway's outbound sender (:class:`gateway.outbound.dispatcher.Dispatcher`) runs in this
process against an embedded PostgreSQL (or ``BENCH_DATABASE_URL``) migrated to head; events
enter through the fan-out's ``apply`` (what the consumer calls per broker batch — the broker
is left out to measure the sender). The receivers run in a child process (aiohttp, answering
``204`` at once; the hanging one sleeps past the 10 s timeout). Each round queues
``BENCH_OUTBOUND_EVENTS`` events (4 per customer, so per-customer ordering is exercised), each
going to every endpoint, and waits until the healthy endpoints have all of theirs.

Printed: deliveries per second to the healthy endpoints, and their latency (event queued →
delivery recorded as succeeded) p50/p95, without and with the hanging endpoint, and the
ratios (goal: the hanging endpoint changes nothing for the others).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, text

from gateway.config import Settings
from gateway.models import OutboundEndpoint
from gateway.outbound.dispatcher import Dispatcher
from gateway.outbound.fanout import Fanout
from gateway.outbound.safety import AddressPolicy
from gateway.outbound.schemas import EndpointCreate
from gateway.outbound.service import SecretBox, create_endpoint
from shared.auth import Principal
from shared.db import Database
from shared.devstack import EmbeddedPostgres
from shared.events import CustomerUpdated, Envelope
from shared.migrate import upgrade
from tests.bench import table
from tests.bench.outbox import STATE

EVENTS = int(os.environ.get("BENCH_OUTBOUND_EVENTS", "2000"))
HEALTHY = 10
_RECEIVERS = """
import asyncio, sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(status=204)

async def hang(request):
    await asyncio.sleep(60)
    return web.Response(status=204)

async def main():
    for i, port in enumerate(sys.argv[1:]):
        app = web.Application()
        app.router.add_post("/", hang if i == 0 else ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(port)).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _round(
    database: Database,
    fanout: Fanout,
    box: SecretBox,
    policy: AddressPolicy,
    urls: list[str],
    hanging: str | None,
) -> tuple[float, list[float]]:
    admin = Principal(subject="bench", scopes=frozenset({"*"}))
    async with database.session() as session:
        await session.execute(delete(OutboundEndpoint))
        healthy = []
        for url in [*urls, *([hanging] if hanging else [])]:
            endpoint, _ = await create_endpoint(
                session,
                box,
                policy,
                admin,
                EndpointCreate(url=url, event_types=["rapport.customer.*"]),
            )
            if url != hanging:
                healthy.append(endpoint.id)
    fanout.invalidate()
    await asyncio.sleep(0.05)  # events must be later than the endpoints' creation
    customers = [uuid.uuid4() for _ in range(EVENTS // 4)]
    envelopes = [
        Envelope.wrap(
            CustomerUpdated(
                customer_id=customers[i % len(customers)],
                changes={"n": i, "note": "x" * 200},
                updated_at=datetime.now(UTC),
            ),
            source="/bench",
        )
        for i in range(EVENTS)
    ]
    started = time.perf_counter()
    for start in range(0, len(envelopes), 500):  # broker batches are up to ~1,000
        await fanout.apply(envelopes[start : start + 500])
    want = EVENTS * len(healthy)
    count = text(
        "SELECT count(*) FROM gateway.outbound_delivery"
        " WHERE status = 'succeeded' AND endpoint_id = ANY(:ids)"
    )
    while True:
        async with database.session() as session:
            done = await session.scalar(count, {"ids": healthy})
        if done >= want:
            break
        if time.perf_counter() - started > 600:
            raise TimeoutError(f"only {done} of {want} deliveries succeeded in 600 s")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    async with database.session() as session:
        latencies = (
            await session.execute(
                text(
                    "SELECT extract(epoch FROM d.finished_at - m.created_at) * 1000"
                    " FROM gateway.outbound_delivery d"
                    " JOIN gateway.outbound_message m ON m.id = d.message_id"
                    " WHERE d.endpoint_id = ANY(:ids)"
                ),
                {"ids": healthy},
            )
        ).scalars()
        values = [float(v) for v in latencies]
        await session.execute(delete(OutboundEndpoint))
    return want / elapsed, values


async def main() -> None:
    started: list[Any] = []
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(STATE / "pg")
        await asyncio.to_thread(postgres.start)
        started.append(postgres)
        postgres.drop_database("rapport_bench_outbound")
        postgres.create_database("rapport_bench_outbound")
        url = postgres.sqlalchemy_url("rapport_bench_outbound")
    ports = [_free_port() for _ in range(HEALTHY + 1)]
    receivers = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RECEIVERS, *map(str, ports), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert receivers.stdout is not None
        await receivers.stdout.readline()
        await asyncio.to_thread(upgrade, "gateway", "head", url)
        settings = Settings(
            database_url=url,
            outbound_allowed=["127.0.0.0/8"],
            outbound_poll_s=0.05,
            log_level="WARNING",
        )
        database = Database(url, schema="gateway", pool_size=10, application_name="bench")
        box = SecretBox("", settings.dev_jwt_secret)
        policy = AddressPolicy(settings.outbound_allowed)
        dispatcher = Dispatcher(database, settings, box, policy)
        fanout = Fanout(database, settings.kafka_bootstrap_servers, on_queued=dispatcher.wake)
        dispatcher.start()
        urls = [f"http://127.0.0.1:{p}/" for p in ports[1:]]
        try:
            print(
                f"outbound webhook benchmark — {EVENTS:,} events x {HEALTHY} endpoints; "
                f"PostgreSQL: {url.split('@')[-1]}"
            )
            rate, latencies = await _round(database, fanout, box, policy, urls, None)
            hang_rate, hang_latencies = await _round(
                database, fanout, box, policy, urls, f"http://127.0.0.1:{ports[0]}/"
            )
        finally:
            await dispatcher.close()
            await database.dispose()
    finally:
        receivers.kill()
        await receivers.wait()
        for process in reversed(started):
            await asyncio.to_thread(process.stop)
    p50, p95 = _pct(latencies, 0.5), _pct(latencies, 0.95)
    h50, h95 = _pct(hang_latencies, 0.5), _pct(hang_latencies, 0.95)
    print(
        f"10 healthy endpoints      {rate:8,.0f} deliveries/s   p50 {p50:7.0f} ms   p95 {p95:7.0f} ms"
    )
    print(
        f"  + 1 hanging endpoint    {hang_rate:8,.0f} deliveries/s   p50 {h50:7.0f} ms"
        f"   p95 {h95:7.0f} ms   (to the healthy ones)"
    )
    table.record(
        f"outbound webhooks: fan-out to {HEALTHY} endpoints",
        f"{rate:,.0f} deliveries/s",
        goal="(no target)",
    )
    table.record(
        "outbound webhooks: healthy p95 with a hanging endpoint",
        f"{h95:,.0f} ms",
        raw=f"{p95:,.0f} ms without it",
        ratio=h95 / p95,
        goal="no effect (~1.00)",
    )
    print(
        f"with/without the hanging endpoint: throughput {hang_rate / rate:.2f},"
        f" p95 latency {h95 / p95:.2f} (goal: ~1.00, no effect)"
    )


if __name__ == "__main__":
    asyncio.run(main())
