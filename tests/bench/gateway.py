"""Gateway benchmark: what the gateway hop costs on ``GET /customers/{id}``.

The dev stack's parts are started the way ``shared/stack.py`` starts them (embedded
PostgreSQL and Tansu unless ``BENCH_DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` are set,
migrations, then customer360 and the gateway as uvicorn processes with uvloop + httptools),
one customer is seeded through the gateway, and ``wrk`` measures the same read

* **direct** to customer360, with an internal token (what the gateway would forward), and
* **through the gateway**, with a dev JWT (authenticated, rate-limited, proxied),

at 1 connection (latency: the p50 the hop adds) and at 64 connections (throughput). Because
customer360's read costs far more CPU than the hop, the same pair is also measured against a
trivial upstream (a fixed JSON answer, routed as ``interactions``): the gateway's own
ceiling, which the customer360 figures hide. Rounds
alternate direct and gateway so drift hits both; medians are printed. Everything shares the
machine's cores (wrk, gateway, service, PostgreSQL), as in shared/FIELD-NOTES.md. Rate limits
are raised for the run so that throughput is not measured on 429s (the limiter still runs).

Knobs: ``BENCH_GATEWAY_SECONDS`` (per measurement, default 8), ``BENCH_GATEWAY_ROUNDS``
(default 3). Goals: ≤ 1 ms added p50, ≥ 75 % of direct throughput. Nothing is asserted.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings as GatewaySettings
from shared.auth import Principal, mint_internal_token
from shared.devstack import EmbeddedPostgres, TansuBroker, free_port
from shared.migrate import upgrade
from shared.parts import Part, part
from shared.settings import DEV_INTERNAL_SECRET
from shared.stack import PartProcess
from tests.bench import table

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".rapport" / "bench"
DATABASE = "rapport_bench_gateway"
SECONDS = int(os.environ.get("BENCH_GATEWAY_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "3"))
CONNECTIONS = 64

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")


def ensure_wrk() -> str | None:
    """The ``wrk`` binary; installs the Debian package when running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing the Debian package `wrk` (apt-get install -y wrk)")
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, check=False, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(install, check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    print("NOTICE: wrk is not installed (Debian package `wrk`); skipping the gateway benchmark.")
    return None


@dataclasses.dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: str


def wrk(binary: str, url: str, header: str, *, connections: int, seconds: int) -> Run:
    command = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        header,
        url,
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    latency = {q: float(v) * _UNIT[u] for q, v, u in _LATENCY.findall(out)}
    rate = _RATE.search(out)
    non_2xx = _NON_2XX.search(out)
    errors = _ERRORS.search(out)
    if rate is None or "50" not in latency:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return Run(
        rate=float(rate.group(1)),
        p50_ms=latency["50"],
        p99_ms=latency.get("99", float("nan")),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=errors.group(0) if errors else "",
    )


def _request(
    port: int, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(
            method, path, body=payload, headers={**headers, "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def start_infra(
    started: list[Any], state: Path = STATE, database: str = DATABASE
) -> tuple[str, str]:
    """Tansu and embedded PostgreSQL under ``state`` (unless configured): (db url, broker)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = TansuBroker(state / "tansu")
        broker.start()
        started.append(broker)
        bootstrap = broker.bootstrap_servers
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(state / "pg")
        postgres.start()
        started.append(postgres)
        postgres.drop_database(database)
        postgres.create_database(database)
        url = postgres.sqlalchemy_url(database)
    return url, bootstrap


def main() -> None:
    binary = ensure_wrk()
    if binary is None:
        return
    started: list[Any] = []
    try:
        url, bootstrap = start_infra(started)
        for name in ("customer360", "gateway"):
            upgrade(name, "head", url)
        c360_port, gateway_port = free_port(), free_port()
        trivial_port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "RAPPORT_ENVIRONMENT": "development",
            "GATEWAY_CUSTOMER360_URL": f"http://127.0.0.1:{c360_port}",
            "GATEWAY_INTERACTIONS_URL": f"http://127.0.0.1:{trivial_port}",
            # Throughput must not be measured on 429s; the limiter still runs.
            "GATEWAY_RATE_LIMITS": json.dumps({"default": 10**9, "admin": 10**9}),
        }
        trivial = Part("trivial", f"{__name__}:trivial_app", "", "", trivial_port)
        for spec in (
            dataclasses.replace(part("customer360"), port=c360_port),
            trivial,
            dataclasses.replace(part("gateway"), port=gateway_port),
        ):
            process = PartProcess(spec, STATE / "logs", env)
            process.start()
            started.append(process)

        settings = GatewaySettings(environment="development")
        jwt = mint_dev_token(settings, role="admin", subject="bench", ttl_s=3600)
        via_gateway = f"Authorization: Bearer {jwt}"
        status, customer = _request(
            gateway_port,
            "POST",
            "/api/v1/customers",
            {"Authorization": f"Bearer {jwt}"},
            {"display_name": "Bench Customer", "emails": ["bench@example.com"], "tags": ["vip"]},
        )
        if status != 201:
            raise RuntimeError(f"seeding through the gateway answered {status}: {customer}")
        principal = Principal(
            subject="bench",
            scopes=frozenset({"customers:read", "customers:pii"}),
            roles=("admin",),
        )
        internal = mint_internal_token(principal, DEV_INTERNAL_SECRET, ttl_s=3600)
        direct = f"Authorization: Bearer {internal}"
        targets = {
            "direct": (c360_port, f"/customers/{customer['id']}", direct),
            "gateway": (gateway_port, f"/api/v1/customers/{customer['id']}", via_gateway),
            "trivial direct": (trivial_port, "/interactions/x", direct),
            "trivial gateway": (gateway_port, "/api/v1/interactions/x", via_gateway),
        }
        for name, (port, path, header) in targets.items():
            key, _, value = header.partition(": ")
            status, body = _request(port, "GET", path, {key: value})
            expected = customer["id"] if "trivial" not in name else TRIVIAL["id"]
            if status != 200 or body["id"] != expected:
                raise RuntimeError(f"{name} read answered {status}: {body}")
        urls = {
            name: (f"http://127.0.0.1:{port}{path}", header)
            for name, (port, path, header) in targets.items()
        }

        print(
            f"gateway benchmark — GET /customers/{{id}}; wrk -t1, {SECONDS}s per run, "
            f"{ROUNDS} rounds (median); cores: {os.cpu_count()}"
        )
        print(f"  wrk -t1 -c1  -d{SECONDS}s --latency -H 'Authorization: Bearer …' <url>")
        print(
            f"  wrk -t1 -c{CONNECTIONS} -d{SECONDS}s --latency -H 'Authorization: Bearer …' <url>"
        )
        for target, header in urls.values():  # warm up connection pools and caches
            wrk(binary, target, header, connections=CONNECTIONS, seconds=2)
        results: dict[tuple[str, int], list[Run]] = {}
        for _ in range(ROUNDS):
            for connections in (1, CONNECTIONS):
                for name, (target, header) in urls.items():
                    run = wrk(binary, target, header, connections=connections, seconds=SECONDS)
                    results.setdefault((name, connections), []).append(run)
    finally:
        for process in reversed(started):
            process.stop()

    def med(name: str, connections: int, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[(name, connections)])

    print()
    for title, direct_name, gateway_name, goals in (
        ("GET /customers/{id} (customer360, PostgreSQL)", "direct", "gateway", True),
        (
            "trivial upstream (fixed JSON): the gateway's own ceiling, no goal",
            "trivial direct",
            "trivial gateway",
            False,
        ),
    ):
        print(title)
        _table(
            [(f"p50 latency, {c} conn (ms)", "p50_ms", c) for c in (1, CONNECTIONS)]
            + [(f"p99 latency, {c} conn (ms)", "p99_ms", c) for c in (1, CONNECTIONS)]
            + [(f"req/s, {c} conn", "rate", c) for c in (1, CONNECTIONS)],
            med,
            direct_name,
            gateway_name,
        )
        added = med(gateway_name, 1, "p50_ms") - med(direct_name, 1, "p50_ms")
        ratio = med(gateway_name, CONNECTIONS, "rate") / med(direct_name, CONNECTIONS, "rate")
        goal_latency, goal_rate = (" (goal ≤ 1 ms)", " (goal ≥ 75 %)") if goals else ("", "")
        print(f"  added p50 latency at 1 connection: {added:.3f} ms{goal_latency}")
        print(f"  throughput at {CONNECTIONS} connections: {ratio:.0%} of direct{goal_rate}")
        if goals:
            table.record(
                "gateway hop: added p50 latency",
                f"{added:.2f} ms",
                raw=f"{med(direct_name, 1, 'p50_ms'):.2f} ms direct",
                goal="≤ 1 ms",
                met=added <= 1,
            )
            table.record(
                f"gateway hop: throughput at {CONNECTIONS} connections",
                f"{med(gateway_name, CONNECTIONS, 'rate'):,.0f} req/s",
                raw=f"{med(direct_name, CONNECTIONS, 'rate'):,.0f} req/s direct",
                ratio=ratio,
                goal="≥ 0.75 of direct",
                met=ratio >= 0.75,
            )
        print()
    per_run = {f"{name}@{c}": [round(r.rate) for r in runs] for (name, c), runs in results.items()}
    print(f"req/s per round: {per_run}")
    bad = {k: sum(r.non_2xx for r in v) for k, v in results.items() if any(r.non_2xx for r in v)}
    if bad:
        print(f"WARNING: non-2xx answers counted: {bad}")
    errors = {k: [r.errors for r in v if r.errors] for k, v in results.items()}
    if any(errors.values()):
        print(f"WARNING: socket errors: { {k: v for k, v in errors.items() if v} }")


def _table(
    rows: list[tuple[str, str, int]],
    med: Callable[[str, int, str], float],
    direct: str,
    gateway: str,
) -> None:
    print(f"| {'metric':<28} | {'direct':>10} | {'gateway':>10} | {'gw/direct':>9} |")
    print(f"| {'-' * 28} | {'-' * 10} | {'-' * 10} | {'-' * 9} |")
    for label, field, connections in rows:
        d, g = med(direct, connections, field), med(gateway, connections, field)
        print(f"| {label:<28} | {d:>10,.2f} | {g:>10,.2f} | {g / d:>9.2f} |")


TRIVIAL = {"id": "00000000-0000-4000-8000-000000000000", "display_name": "Trivial", "tags": []}


def trivial_app() -> Callable[..., Awaitable[None]]:
    """``uvicorn --factory`` target: answers every request with the same small JSON."""
    body = json.dumps(TRIVIAL).encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app
