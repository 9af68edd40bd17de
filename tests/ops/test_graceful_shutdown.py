"""SIGTERM under load: a real part process (``rapport serve customer360``) stops in order.

customer360 both publishes ``CustomerCreated`` (through its outbox) and consumes it (its 360
view), so one process exercises every piece of the shutdown sequence: the HTTP server drains,
the consumer commits what it applied, the relay flushes the outbox, the process exits 0.

It runs on its own database and its own (embedded Tansu) broker so that the ``customer360``
consumer group starts from an empty topic and every event on it is this test's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.devstack import TansuBroker, free_port
from shared.events import TOPICS
from shared.messaging import ensure_topics
from shared.migrate import upgrade
from shared.parts import part
from shared.settings import RapportSettings
from shared.stack import PartProcess
from tests.conftest import Infra
from tests.support import bearer

TOKEN = bearer("customers:write", "customers:read", "customers:pii")
WORKERS = 16


@dataclasses.dataclass
class Load:
    created: dict[str, str] = dataclasses.field(default_factory=dict)  # email → customer id
    answers: dict[int, int] = dataclasses.field(default_factory=dict)  # status → count
    #: Requests that got no answer: (email, error, seconds after SIGTERM or None before it).
    unanswered: list[tuple[str, str, float | None]] = dataclasses.field(default_factory=list)


async def _worker(client: httpx.AsyncClient, load: Load, worker: int, sigterm_at: list[float]):
    n = 0
    while True:
        n += 1
        email = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}@shutdown.example"
        body = {"given_name": "伟", "family_name": "张", "emails": [email], "tags": ["load"]}
        try:
            response = await client.post("/customers", json=body, headers=TOKEN)
        except httpx.TransportError as exc:
            since = time.monotonic() - sigterm_at[0] if sigterm_at else None
            load.unanswered.append((email, type(exc).__name__, since))
            return
        load.answers[response.status_code] = load.answers.get(response.status_code, 0) + 1
        if response.status_code == 201:
            load.created[email] = response.json()["id"]


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _applied(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return _metric(text, "rapport_consumer_events_total", outcome="applied")


async def _run_load(process: PartProcess) -> tuple[Load, int | None]:
    load = Load()
    sigterm_at: list[float] = []
    base = f"http://127.0.0.1:{process.port}"
    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        workers = [
            asyncio.create_task(_worker(client, load, i, sigterm_at)) for i in range(WORKERS)
        ]
        # SIGTERM once the consumer is busy too (joining a group takes a few seconds).
        async with asyncio.timeout(60):
            while await _applied(client) < 20 or len(load.created) < 200:
                await asyncio.sleep(0.2)
        sigterm_at.append(time.monotonic())
        status = await asyncio.to_thread(process.stop)
        async with asyncio.timeout(30):
            await asyncio.gather(*workers)
    return load, status


async def _events(bootstrap: str) -> list[tuple[str, str, str]]:
    """(event id, type, key) of every message on the customer topic."""
    consumer = AIOKafkaConsumer(
        "rapport.customer.v1",
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[tuple[str, str, str]] = []
        idle = 0
        while idle < 3:
            batches = await consumer.getmany(timeout_ms=500)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    found.append((headers["ce_id"], headers["ce_type"], r.key.decode()))
        return found
    finally:
        await consumer.stop()


async def _db(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
def isolated(infra: Infra, tmp_path: Path):
    name = f"rapport_shutdown_{uuid.uuid4().hex[:8]}"
    url = infra.create_database(name)
    broker = TansuBroker(tmp_path / "tansu")
    try:
        upgrade("customer360", "head", url)
        broker.start()
        settings = RapportSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
        asyncio.run(ensure_topics(settings, TOPICS))
        yield url, broker.bootstrap_servers
    finally:
        broker.stop()
        infra.drop_database(name)


def test_sigterm_under_load_fails_no_request_and_loses_or_repeats_no_event(
    isolated: tuple[str, str], tmp_path: Path
) -> None:
    url, bootstrap = isolated
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": "false",
        "RAPPORT_KAFKA_CREATE_TOPICS": "false",
        "RAPPORT_ENVIRONMENT": "test",
        "RAPPORT_LOG_LEVEL": "INFO",
        "RAPPORT_OUTBOX_POLL_INTERVAL_S": "0.2",
    }
    spec = dataclasses.replace(part("customer360"), port=free_port())
    process = PartProcess(spec, tmp_path / "logs", env)
    process.start()
    try:
        load, status = asyncio.run(_run_load(process))
    finally:
        process.stop()
    log = process.log_path.read_text()
    print(  # shown with -s: the figures behind the assertions below
        f"answered {sum(load.answers.values())} ({load.answers}), "
        f"unanswered {[(e, s) for _, e, s in load.unanswered]}"
    )

    # The process stopped in order, by itself, with status 0.
    assert status == 0, log[-3000:]
    assert "customer360 stopped" in log

    # Every request the server took was answered, and answered with success.
    assert load.answers == {201: len(load.created)}
    assert len(load.created) >= 200
    assert len(load.unanswered) <= 16  # at most one per worker: the one that found it closed
    assert all(since is not None for _, _, since in load.unanswered), load.unanswered
    # A request without an answer was never taken: it left nothing behind.
    missing = [email for email, _, _ in load.unanswered]
    rows = asyncio.run(
        _db(
            url,
            "SELECT count(*) AS n FROM customer360.customer_identity WHERE kind = 'email' AND value = ANY($1)",
            missing,
        )
    )
    assert rows[0]["n"] == 0

    # The database holds exactly the customers that were answered 201 …
    stored = asyncio.run(_db(url, "SELECT id::text AS id FROM customer360.customer"))
    assert {r["id"] for r in stored} == set(load.created.values())
    # … the outbox was flushed before exit …
    assert asyncio.run(_db(url, "SELECT count(*) AS n FROM customer360.outbox"))[0]["n"] == 0
    # … and every customer's CustomerCreated is on the broker exactly once.
    events = asyncio.run(_events(bootstrap))
    created = [e for e in events if e[1] == "rapport.customer.created.v1"]
    assert len({e[0] for e in events}) == len(events)  # no event sent twice
    assert sorted(e[2] for e in created) == sorted(load.created.values())

    # The consumer committed what it applied: a fresh process resumes where it stopped,
    # applies every remaining event once and sees no event again.
    applied_before = asyncio.run(
        _db(url, "SELECT count(*) AS n FROM customer360.inbox WHERE consumer = 'customer360'")
    )[0]["n"]
    assert applied_before > 0
    restarted = PartProcess(spec, tmp_path / "logs2", env)
    restarted.start()
    try:

        async def caught_up() -> str:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{spec.port}") as client,
                asyncio.timeout(90),
            ):
                while True:
                    rows = await _db(
                        url,
                        "SELECT count(*) AS n FROM customer360.inbox "
                        "WHERE consumer = 'customer360' AND event_type = $1",
                        "rapport.customer.created.v1",
                    )
                    if rows[0]["n"] >= len(created):
                        return (await client.get("/metrics")).text
                    await asyncio.sleep(0.5)

        metrics = asyncio.run(caught_up())
    finally:
        assert restarted.stop() == 0
    assert _metric(metrics, "rapport_consumer_events_total", outcome="duplicate") == 0
    assert re.search(r"rapport_consumer_events_total\{", metrics)
