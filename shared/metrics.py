"""Prometheus metrics shared by every part, and the ``/metrics`` endpoint."""

from __future__ import annotations

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "CONSUMER_EVENTS",
    "CONSUMER_LAG",
    "CONSUMER_STALLS",
    "DEAD_LETTERS",
    "HTTP_REQUESTS",
    "OUTBOX_BACKLOG",
    "OUTBOX_BATCH_SECONDS",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_SENT",
    "WEBHOOK_DELIVERIES",
    "metrics_response",
]

HTTP_REQUESTS = Histogram(
    "rapport_http_request_duration_seconds",
    "HTTP request latency by route template and status.",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_SENT = Counter("rapport_outbox_sent_total", "Outbox rows relayed to Kafka.", ["schema"])
OUTBOX_BATCH_SECONDS = Histogram(
    "rapport_outbox_batch_seconds", "Time to send and acknowledge one relay batch.", ["schema"]
)
OUTBOX_BACKLOG = Gauge("rapport_outbox_backlog", "Outbox rows not yet relayed.", ["schema"])
OUTBOX_OLDEST_AGE = Gauge(
    "rapport_outbox_oldest_age_seconds", "Age of the oldest unrelayed outbox row.", ["schema"]
)
CONSUMER_EVENTS = Counter(
    "rapport_consumer_events_total",
    "Events seen by a consumer group, by outcome (applied, duplicate, ignored).",
    ["group", "type", "outcome"],
)
CONSUMER_LAG = Gauge(
    "rapport_consumer_lag", "Messages behind the partition's end.", ["group", "topic", "partition"]
)
CONSUMER_STALLS = Counter(
    "rapport_consumer_stalls_total", "Consumers restarted after making no progress.", ["group"]
)
DEAD_LETTERS = Counter(
    "rapport_dead_letters_total", "Messages sent to a dead-letter topic.", ["group", "type"]
)

WEBHOOK_DELIVERIES = Counter(
    "rapport_webhook_deliveries_total",
    "Outbound webhook delivery attempts by outcome (succeeded, failed, timeout, refused, gone).",
    ["outcome"],
)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
