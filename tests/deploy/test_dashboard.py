"""deploy/grafana: every query names metrics and labels the code really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import gateway.proxy
import gateway.webhooks.batcher
import shared.metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "rapport-dashboard.json"
METRIC = re.compile(r"\b(rapport_[a-z0-9_]+)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"\b([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
#: Modules whose metrics the dashboard may use (imported so they are registered).
EXPORTERS = (shared.metrics, gateway.proxy, gateway.webhooks.batcher)


def exported() -> dict[str, set[str]]:
    """Sample name → label names, for every sample the registry can produce."""
    labels: dict[str, set[str]] = {}
    for collector, names in REGISTRY._collector_to_names.items():
        label_names = set(getattr(collector, "_labelnames", ()))
        for name in names:
            labels[name] = label_names | ({"le"} if name.endswith("_bucket") else set())
    return labels


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["name"], variable["definition"]


def problems(dashboard: dict[str, Any]) -> list[str]:
    known = exported()
    found: list[str] = []
    for title, expr in expressions(dashboard):
        metrics = METRIC.findall(expr)
        if not metrics:
            found.append(f"{title}: no rapport metric in {expr}")
        unknown = [m for m in metrics if m not in known]
        found += [f"{title}: {m} is not exported" for m in unknown]
        available = set().union(*(known.get(m, set()) for m in metrics))
        used = {
            label.strip()
            for group in GROUPING.findall(expr)
            for label in group.split(",")
            if label.strip()
        } | set(MATCHER.findall(expr))
        found += [f"{title}: label {label} not on {metrics}" for label in used - available]
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_dashboard_queries_use_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    assert problems(dashboard) == []


def test_dashboard_covers_every_metric_of_shared_metrics(dashboard: dict[str, Any]) -> None:
    used = {m for _, expr in expressions(dashboard) for m in METRIC.findall(expr)}
    for name in shared.metrics.__all__:
        metric = getattr(shared.metrics, name, None)
        if metric is None or not hasattr(metric, "_name"):
            continue
        assert any(u == metric._name or u.startswith(metric._name + "_") for u in used), name


def test_the_check_notices_a_renamed_metric_or_label(dashboard: dict[str, Any]) -> None:
    text = json.dumps(dashboard)
    renamed = json.loads(text.replace("rapport_outbox_backlog", "rapport_outbox_lag"))
    assert any("rapport_outbox_lag is not exported" in p for p in problems(renamed))
    relabelled = json.loads(text.replace("sum by (group, topic)", "sum by (group, queue)"))
    assert any("label queue" in p for p in problems(relabelled))


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "rapport-overview"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
