"""Webhook front door benchmark: signed partner webhooks accepted *durably* per second.

A real gateway process (uvicorn, embedded PostgreSQL, Tansu) receives Standard-Webhooks
signed POSTs from ``wrk`` (a Lua script cycling through pre-signed, unique requests). The
script writes down the receipt id of every 2xx answer; after the run each of them is looked
up in PostgreSQL: every acknowledged webhook must have its stored row, so the figure is of
webhooks stored before they were acknowledged, not merely answered. (Counting all rows
instead would also count the requests still in flight when wrk stopped: stored, never
answered.) Goal: ≥ 2,000 webhooks/s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.webhooks import service
from shared.db import Database
from shared.devstack.process import free_port
from shared.migrate import upgrade
from shared.parts import part
from shared.stack import PartProcess
from shared.standard_webhooks import sign
from tests.bench import table
from tests.bench.gateway import _NON_2XX, _RATE, STATE, ensure_wrk, start_infra

SECONDS = int(os.environ.get("BENCH_WEBHOOK_SECONDS", "10"))
CONNECTIONS = 32
REQUESTS = 120_000
BODY = (
    '{"id": "evt_%s", "type": "order.paid", "order": {"id": 1001, "currency": "EUR", '
    '"total": "129.90", "customer": {"email": "wei.zhang@example.com", "phone": '
    '"+8613812345678"}, "lines": [{"sku": "SKU-1", "qty": 2, "price": "49.95"}, '
    '{"sku": "SKU-2", "qty": 1, "price": "30.00"}]}}'
)

LUA = """
local requests = {}
local n = 0
local acks
init = function(args)
  for line in io.lines(args[1]) do
    local id, ts, sig, body = line:match("([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)\\t(.+)")
    requests[#requests + 1] = wrk.format("POST", args[2], {
      ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig,
      ["content-type"] = "application/json"}, body)
  end
  acks = io.open(args[3], "w")
  acks:setvbuf("line")
end
request = function()
  n = n + 1
  return requests[((n - 1) % #requests) + 1]
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    acks:write(body:match('"receipt_id":"([%x%-]+)"') or "unreadable", "\\n")
  end
end
"""


async def _create_source(url: str, name: str) -> str:
    database = Database(url, schema="gateway", application_name="bench")
    try:
        async with database.session() as session:
            _, secret = await service.create_source(session, name, "benchmark")
        return secret.secret
    finally:
        await database.dispose()


async def _count_receipts(url: str, name: str, acknowledged: list[str]) -> tuple[int, int]:
    """(receipts stored for the source, acknowledged receipt ids found among them)."""
    database = Database(url, schema="gateway", application_name="bench")
    try:
        async with database.session() as session:
            result = await session.execute(
                text("SELECT id::text FROM gateway.webhook_receipt WHERE source = :s"), {"s": name}
            )
            stored = set(result.scalars())
        return len(stored), sum(1 for receipt_id in acknowledged if receipt_id in stored)
    finally:
        await database.dispose()


def main() -> None:
    binary = ensure_wrk()
    if binary is None:
        return
    started: list[Any] = []
    name = f"bench{uuid.uuid4().hex[:6]}"
    try:
        url, bootstrap = start_infra(started, STATE / "webhooks", "rapport_bench_webhooks")
        upgrade("gateway", "head", url)
        secret = asyncio.run(_create_source(url, name))
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "RAPPORT_ENVIRONMENT": "development",
            "RAPPORT_LOG_LEVEL": "WARNING",
        }
        gateway = PartProcess(dataclasses.replace(part("gateway"), port=port), STATE / "logs", env)
        gateway.start()
        started.append(gateway)

        # The same process's ceiling: an endpoint that touches nothing.
        health = subprocess.run(
            [binary, "-t1", f"-c{CONNECTIONS}", "-d5s", f"http://127.0.0.1:{port}/health"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        health_rate = _RATE.search(health)
        now = int(time.time())
        with tempfile.TemporaryDirectory() as tmp:
            requests = Path(tmp) / "requests.tsv"
            with requests.open("w") as out:
                for i in range(REQUESTS):
                    msg_id = f"msg_{i:08d}_{name}"
                    body = BODY % i
                    signature = sign(secret, msg_id, now, body.encode())
                    out.write(f"{msg_id}\t{now}\t{signature}\t{body}\n")
            script = Path(tmp) / "webhooks.lua"
            script.write_text(LUA)
            acks = Path(tmp) / "acknowledged.txt"
            command = [
                binary,
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{SECONDS}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/webhooks/{name}",
                "--",
                str(requests),
                f"/webhooks/{name}",
                str(acks),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            acknowledged = acks.read_text().split()
        rate = _RATE.search(output)
        non_2xx = _NON_2XX.search(output)
        total = next(
            (int(line.split()[0]) for line in output.splitlines() if "requests in" in line), 0
        )
        if rate is None:
            raise RuntimeError(f"cannot read wrk's output:\n{output}")
        stored, found = asyncio.run(_count_receipts(url, name, acknowledged))
    finally:
        for process in reversed(started):
            process.stop()
    failed = int(non_2xx.group(1)) if non_2xx else 0
    print(
        f"webhook front door — signed POST /webhooks/{{source}}, ~{len(BODY)} B bodies, "
        f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s -s <pre-signed requests>"
    )
    print(f"| {'metric':<34} | {'value':>10} |")
    print(f"| {'-' * 34} | {'-' * 10} |")
    print(f"| {'webhooks accepted (req/s)':<34} | {float(rate.group(1)):>10,.0f} |")
    if health_rate is not None:
        print(
            f"| {'same gateway, GET /health (req/s)':<34} | {float(health_rate.group(1)):>10,.0f} |"
        )
    print(f"| {'requests answered':<34} | {total:>10,} |")
    print(f"| {'non-2xx answers':<34} | {failed:>10,} |")
    print(f"| {'2xx answers (receipt ids noted)':<34} | {len(acknowledged):>10,} |")
    print(f"| {'… of them stored in PostgreSQL':<34} | {found:>10,} |")
    print(f"| {'receipts stored (incl. in flight)':<34} | {stored:>10,} |")
    accepted = float(rate.group(1))
    table.record(
        "webhook front door: accepted and stored",
        f"{accepted:,.0f} /s",
        raw=f"{float(health_rate.group(1)):,.0f} req/s GET /health" if health_rate else "",
        ratio=accepted / 2000,
        goal="≥ 2,000 /s",
        met=accepted >= 2000 and found == len(acknowledged),
    )
    print(
        f"goal ≥ 2,000/s: {float(rate.group(1)) / 2000:.2f} times the goal; stored/accepted = "
        f"{found / max(len(acknowledged), 1):.3f} (1.000: every acknowledged webhook was stored)"
    )
