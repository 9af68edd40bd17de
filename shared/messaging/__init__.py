"""Kafka plumbing: the transactional outbox, its relay, the inbox and the consumer runner."""

from shared.messaging.consumer import (
    CommitHook,
    ConsumerRunner,
    Handler,
    Subscriptions,
    deferred,
)
from shared.messaging.kafka import Producer, ensure_topics
from shared.messaging.outbox import (
    OutboxRelay,
    copy_envelopes,
    outbox_tables,
    publish,
    write_envelopes,
)

__all__ = [
    "CommitHook",
    "ConsumerRunner",
    "Handler",
    "OutboxRelay",
    "Producer",
    "Subscriptions",
    "copy_envelopes",
    "deferred",
    "ensure_topics",
    "outbox_tables",
    "publish",
    "write_envelopes",
]
