"""Kafka plumbing: the transactional outbox, its relay, the inbox and the consumer runner."""

from shared.messaging.consumer import ConsumerRunner, Handler, Subscriptions
from shared.messaging.kafka import Producer, ensure_topics
from shared.messaging.outbox import (
    OutboxRelay,
    copy_envelopes,
    outbox_tables,
    publish,
    write_envelopes,
)

__all__ = [
    "ConsumerRunner",
    "Handler",
    "OutboxRelay",
    "Producer",
    "Subscriptions",
    "copy_envelopes",
    "ensure_topics",
    "outbox_tables",
    "publish",
    "write_envelopes",
]
