"""``make bench`` at a small scale, in CI: every benchmark runs end to end and reports its rows.

The figures of so short a run say nothing about speed (that is judged by ``make bench`` on a
quiet machine, never in tests). What this checks is that each benchmark still starts its
infrastructure, drives the real parts, measures and records its figures — so that the table
``make bench`` prints cannot rot between full runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Sizes small enough for CI (minutes, not the full run's ten).
SHORT = {
    "BENCH_OUTBOX_SECONDS": "1",
    "BENCH_OUTBOX_BACKLOG": "2000",
    "BENCH_GATEWAY_SECONDS": "1",
    "BENCH_GATEWAY_ROUNDS": "1",
    "BENCH_WEBHOOK_SECONDS": "1",
    "BENCH_SEARCH_CUSTOMERS": "20000",
    "BENCH_SEARCH_QUERIES": "5",
    "BENCH_IMPORT_ROWS": "2000",
    "BENCH_INGEST_SECONDS": "1",
    "BENCH_INGEST_BODIES": "20",
    "BENCH_OUTBOUND_EVENTS": "100",
    "BENCH_CAMPAIGN_MESSAGES": "100",
    "BENCH_SEGMENT_CUSTOMERS": "20000",
    "BENCH_SEGMENT_ROUNDS": "1",
    "BENCH_SEGMENT_RATES": "20",
    "BENCH_SEGMENT_SECONDS": "2",
    "BENCH_IDLE_SECONDS": "1",
}

#: Every row of the table, by the start of its figure (sizes and rates follow).
FIGURES = (
    "outbox: commit → broker ack p99",
    "outbox: relay throughput",
    "gateway hop: added p50 latency",
    "gateway hop: throughput",
    "webhook front door: accepted and stored",
    "customer search p95",
    "customer import",
    "interaction batch ingest",
    "outbound webhooks: fan-out",
    "outbound webhooks: healthy p95",
    "campaign send",
    "segment full recompute",
    "order → SegmentEntered p95 at 20/s",
    "memory idle: gateway",
    "memory idle: customer360",
    "memory idle: interactions",
    "memory idle: orders",
    "memory idle: segmentation",
)


@pytest.mark.timeout(900)
def test_every_benchmark_runs_and_reports_its_figures(tmp_path: Path) -> None:
    env = {**os.environ, **SHORT, "BENCH_RESULTS_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    rows = {
        cells[0]: cells[1]
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith(("| figure", "| -"))
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for figure in FIGURES:
        found = [name for name in rows if name.startswith(figure)]
        assert len(found) == 1, f"{figure!r} not reported once: {sorted(rows)}"
        assert re.fullmatch(r"[\d,]+(\.\d+)? [^\d].*", rows[found[0]]), (figure, rows[found[0]])
    assert len(rows) == len(FIGURES)
