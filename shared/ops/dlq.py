"""``rapport dlq list`` / ``rapport dlq replay``: the dead-letter topics.

A consumer group's dead letters are on ``rapport.dlq.<group>`` (see
:mod:`shared.messaging.consumer`), each the original message with ``dlq_*`` headers saying
why and from where. Replaying sends a dead letter back to its original topic with its
original key and headers (the ``dlq_*`` ones removed), so every consumer sees it again: the
group that failed applies it (once fixed), the others skip it through their inbox.

What was replayed is remembered as the committed offset of the consumer group
``rapport.dlq-replay.<group>`` on the dead-letter topic, so replaying twice does not send a
message twice, and ``list`` marks what was replayed already. A replay of chosen events
re-appends the pending letters it skips over, so they stay pending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from shared.events import dead_letter_topic
from shared.settings import RapportSettings

__all__ = ["DeadLetter", "list_dead_letters", "replay_dead_letters", "replay_group"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    group: str
    partition: int
    offset: int
    key: str | None
    event_type: str
    event_id: str
    error: str
    failed_at: str
    original_topic: str
    replayed: bool
    value: bytes = field(repr=False)
    headers: list[tuple[str, bytes]] = field(repr=False)


def replay_group(group: str) -> str:
    return f"rapport.dlq-replay.{group}"


async def _partitions(settings: RapportSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )


async def _read(
    settings: RapportSettings, group: str
) -> tuple[list[DeadLetter], AIOKafkaConsumer, dict[TopicPartition, int]]:
    """Every dead letter of ``group`` (up to the end offsets at the time of the call), with a
    consumer left open on the replay group (for committing) and the ends per partition."""
    topic = dead_letter_topic(group)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=replay_group(group),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
        letters: list[DeadLetter] = []
        ends: dict[TopicPartition, int] = {}
        if not tps:
            return letters, consumer, ends
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp) or 0
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp]:
                        break
                    h = {k: v.decode(errors="replace") for k, v in record.headers}
                    letters.append(
                        DeadLetter(
                            group=group,
                            partition=tp.partition,
                            offset=record.offset,
                            key=record.key.decode(errors="replace") if record.key else None,
                            event_type=h.get("ce_type", "unknown"),
                            event_id=h.get("ce_id", ""),
                            error=h.get("dlq_error", ""),
                            failed_at=h.get("dlq_failed_at", ""),
                            original_topic=h.get("dlq_original_topic", ""),
                            replayed=record.offset < committed,
                            value=record.value or b"",
                            headers=list(record.headers),
                        )
                    )
                if not batch:
                    break
        return letters, consumer, ends
    except BaseException:
        await consumer.stop()
        raise


async def list_dead_letters(settings: RapportSettings, group: str) -> list[DeadLetter]:
    letters, consumer, _ = await _read(settings, group)
    await consumer.stop()
    return letters


async def replay_dead_letters(
    settings: RapportSettings, group: str, *, event_ids: set[str] | None = None
) -> list[DeadLetter]:
    """Send the dead letters of ``group`` not replayed yet (or only ``event_ids`` among them)
    back to their original topics; returns those sent.

    Bookkeeping stays one offset per partition: on each partition the replay offset moves
    past the last letter sent, and pending letters before it that were not chosen are
    appended to the dead-letter topic again (same key, value and headers), so they stay
    pending, at a new offset."""
    letters, consumer, _ = await _read(settings, group)
    try:
        pending = [d for d in letters if not d.replayed]
        chosen = [
            d
            for d in pending
            if d.original_topic and (event_ids is None or d.event_id in event_ids)
        ]
        requeue: list[DeadLetter] = []
        commits: dict[TopicPartition, OffsetAndMetadata] = {}
        topic = dead_letter_topic(group)
        for partition in {d.partition for d in chosen}:
            last = max(d.offset for d in chosen if d.partition == partition)
            requeue += [
                d
                for d in pending
                if d.partition == partition and d.offset < last and d not in chosen
            ]
            commits[TopicPartition(topic, partition)] = OffsetAndMetadata(last + 1, "")
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=settings.kafka_idempotent_producer,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    d.original_topic,
                    value=d.value,
                    key=d.key.encode() if d.key is not None else None,
                    headers=[(k, v) for k, v in d.headers if not k.startswith("dlq_")],
                )
                for d in chosen
            ]
            futures += [
                await producer.send(
                    topic,
                    value=d.value,
                    key=d.key.encode() if d.key is not None else None,
                    partition=d.partition,
                    headers=d.headers,
                )
                for d in requeue
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        if commits:
            await consumer.commit(commits)
        return chosen
    finally:
        await consumer.stop()
