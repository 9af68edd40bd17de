"""Interaction ingest benchmark: behaviour events accepted *and persisted* per second.

A real interactions process (uvicorn, embedded PostgreSQL, Tansu, outbox relay on) receives
``POST /interactions:batch`` requests of 1,000 web behaviour events each (page views, clicks,
searches; ~100 customers, 10 events each, every event with its own ``event_id``) from ``wrk``
cycling through pre-built, distinct bodies. Afterwards the rows stored in PostgreSQL for the
run's source are counted. The figure is events acknowledged as ``stored`` (summed from the
answers by the wrk script) per second of the run, checked against the rows really in
PostgreSQL (each one was validated on its own, its customer checked, and its coalesced event
queued in the outbox in the same transaction); batches still in flight when wrk stopped are
stored but not counted. Goal: ≥ 5,000 events/s on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import re
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from shared.devstack.process import free_port
from shared.migrate import upgrade
from shared.parts import part
from shared.stack import PartProcess
from tests.bench import table
from tests.bench.gateway import _NON_2XX, _RATE, STATE, ensure_wrk, start_infra
from tests.support import bearer

SECONDS = int(os.environ.get("BENCH_INGEST_SECONDS", "10"))
CONNECTIONS = 4
BATCH = 1000
BODIES = int(os.environ.get("BENCH_INGEST_BODIES", "250"))
CUSTOMERS = 5000
PER_CUSTOMER = 10
GOAL = 5000.0

LUA = """
local requests = {}
local n = 0
local acknowledged = 0
local out
init = function(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", args[2], {
      ["authorization"] = args[3], ["content-type"] = "application/json"}, line)
  end
  out = args[4]
end
request = function()
  n = n + 1
  return requests[((n - 1) % #requests) + 1]
end
response = function(status, headers, body)
  if status == 200 then
    acknowledged = acknowledged + tonumber(body:match('^{"stored":(%d+)') or "0")
    local f = io.open(out, "w")
    f:write(acknowledged)
    f:close()
  end
end
"""
_ELAPSED = re.compile(r"(\d+) requests in ([\d.]+)(ms|s|m)")


def _event(rnd: random.Random, customer: uuid.UUID, n: int, at: datetime) -> dict[str, Any]:
    product = f"SKU-{rnd.randrange(10_000):05d}"
    roll = rnd.random()
    if roll < 0.7:
        kind, metadata = (
            "page_view",
            {
                "url": f"https://shop.example.com/p/{product.lower()}",
                "title": "Green tea, 250 g",
                "product": product,
                "session_id": f"s-{customer.hex[:8]}",
            },
        )
    elif roll < 0.9:
        kind, metadata = (
            "click",
            {"element": "add-to-cart", "product": product, "session_id": f"s-{customer.hex[:8]}"},
        )
    else:
        kind, metadata = "search", {"term": rnd.choice(["green tea", "oolong", "teapot"])}
    return {
        "event_id": f"{n:012d}",
        "customer_id": str(customer),
        "channel": "web",
        "kind": kind,
        "occurred_at": (at + timedelta(milliseconds=n % 60_000)).isoformat(),
        "metadata": metadata,
    }


def _bodies(source: str, customers: list[uuid.UUID]) -> list[str]:
    rnd = random.Random(11)
    at = datetime.now(UTC) - timedelta(hours=1)
    bodies, n = [], 0
    for _ in range(BODIES):
        events = []
        for customer in rnd.sample(customers, BATCH // PER_CUSTOMER):
            for _ in range(PER_CUSTOMER):
                events.append(_event(rnd, customer, n, at))
                n += 1
        bodies.append(json.dumps({"source": source, "events": events}, separators=(",", ":")))
    return bodies


async def _seed(url: str, customers: list[uuid.UUID]) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.copy_records_to_table(
            "customer_scope",
            schema_name="interactions",
            records=[(c, "bench", "bench") for c in customers],
            columns=["customer_id", "owner_id", "team_id"],
        )
    finally:
        await conn.close()


async def _count(url: str, source: str) -> tuple[int, int]:
    """(interactions stored for ``source``, outbox rows not yet relayed)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM interactions.interaction WHERE source = $1", source
        )
        pending = await conn.fetchval("SELECT count(*) FROM interactions.outbox")
        return int(stored), int(pending)
    finally:
        await conn.close()


def main() -> None:
    binary = ensure_wrk()
    if binary is None:
        return
    started: list[Any] = []
    source = f"bench-{uuid.uuid4().hex[:6]}"
    customers = [uuid.uuid4() for _ in range(CUSTOMERS)]
    try:
        url, bootstrap = start_infra(started, STATE / "ingest", "rapport_bench_ingest")
        upgrade("interactions", "head", url)
        asyncio.run(_seed(url, customers))
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "RAPPORT_ENVIRONMENT": "development",
            "RAPPORT_LOG_LEVEL": "WARNING",
            "INTERACTIONS_SLA_SCHEDULER_ENABLED": "false",
        }
        service = PartProcess(
            dataclasses.replace(part("interactions"), port=port), STATE / "logs", env
        )
        service.start()
        started.append(service)
        token = bearer("interactions:write")["Authorization"]
        with tempfile.TemporaryDirectory() as tmp:
            bodies = Path(tmp) / "bodies.jsonl"
            bodies.write_text("\n".join(_bodies(source, customers)) + "\n")
            size = bodies.stat().st_size // BODIES
            script = Path(tmp) / "ingest.lua"
            script.write_text(LUA)
            acks = Path(tmp) / "acknowledged.txt"
            command = [
                binary,
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{SECONDS}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/interactions:batch",
                "--",
                str(bodies),
                "/interactions:batch",
                token,
                str(acks),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            acknowledged = int(acks.read_text() or "0") if acks.exists() else 0
        rate, elapsed = _RATE.search(output), _ELAPSED.search(output)
        non_2xx = _NON_2XX.search(output)
        if rate is None or elapsed is None:
            raise RuntimeError(f"cannot read wrk's output:\n{output}")
        requests = int(elapsed.group(1))
        seconds = float(elapsed.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[elapsed.group(3)]
        stored, pending = asyncio.run(_count(url, source))
    finally:
        for process in reversed(started):
            process.stop()
    failed = int(non_2xx.group(1)) if non_2xx else 0
    events_per_s = min(acknowledged, stored) / seconds
    print(
        f"interaction ingest — POST /interactions:batch, {BATCH:,} behaviour events "
        f"(~{size // 1024} KiB) per request, wrk -t1 -c{CONNECTIONS} -d{SECONDS}s"
    )
    print(f"| {'metric':<38} | {'value':>10} |")
    print(f"| {'-' * 38} | {'-' * 10} |")
    print(f"| {'batches answered (req/s)':<38} | {float(rate.group(1)):>10,.1f} |")
    print(f"| {'batches answered':<38} | {requests:>10,} |")
    print(f"| {'non-2xx answers':<38} | {failed:>10,} |")
    print(f"| {'events acknowledged as stored':<38} | {acknowledged:>10,} |")
    print(f"| {'rows in PostgreSQL (incl. in flight)':<38} | {stored:>10,} |")
    print(f"| {'events stored and acknowledged per s':<38} | {events_per_s:>10,.0f} |")
    print(f"| {'outbox rows not yet relayed at the end':<38} | {pending:>10,} |")
    if requests > BODIES:
        print(f"(wrk cycled through {BODIES} distinct bodies: repeats were stored as duplicates)")
    ratio = events_per_s / GOAL
    table.record(
        "interaction batch ingest (behaviour events)",
        f"{events_per_s:,.0f} ev/s",
        ratio=ratio,
        goal=f"≥ {GOAL:,.0f} ev/s",
        met=ratio >= 1 and failed == 0,
    )
    print(
        f"ratio to goal {ratio:.2f} (goal ≥ {GOAL:,.0f} events/s: "
        f"{'met' if ratio >= 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
