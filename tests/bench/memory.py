"""Memory per process, idle: every part started as in production (uvicorn, consumers,
relays, schedulers), migrated, connected to PostgreSQL and the broker, then left alone for
``BENCH_IDLE_SECONDS`` (default 10). Prints each process's resident set size (RSS, with
the children uvicorn spawns). Goal: ≤ 150 MB each.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import psutil

from shared.devstack.process import free_port
from shared.migrate import upgrade
from shared.parts import PARTS, part
from shared.stack import PartProcess
from tests.bench import table
from tests.bench.gateway import STATE, start_infra

IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "10"))
GOAL_MB = 150


def _rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    members = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in members if p.is_running()) / 2**20


def main() -> None:
    started: list[Any] = []
    sizes: dict[str, float] = {}
    try:
        url, bootstrap = start_infra(started, STATE / "memory", "rapport_bench_memory")
        names = [p.name for p in PARTS]
        for name in names:
            upgrade(name, "head", url)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RAPPORT_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "RAPPORT_ENVIRONMENT": "development",
            "RAPPORT_LOG_LEVEL": "WARNING",
        }
        processes = {}
        for name in names:
            process = PartProcess(
                dataclasses.replace(part(name), port=free_port()), STATE / "logs", env
            )
            process.start()
            started.append(process)
            processes[name] = process
        time.sleep(IDLE_SECONDS)
        for name, process in processes.items():
            pid = process.pid
            if pid is not None:
                sizes[name] = _rss_mb(pid)
    finally:
        for process in reversed(started):
            process.stop()
    print(f"memory per process after {IDLE_SECONDS:.0f} s idle (RSS, MB; goal ≤ {GOAL_MB})")
    for name, size in sizes.items():
        print(f"  {name:<14} {size:7.1f}")
        table.record(
            f"memory idle: {name}",
            f"{size:.0f} MB",
            ratio=size / GOAL_MB,
            goal=f"≤ {GOAL_MB} MB",
            met=size <= GOAL_MB,
        )


if __name__ == "__main__":
    main()
