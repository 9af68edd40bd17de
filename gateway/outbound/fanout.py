"""From Rapport's topics to per-endpoint delivery queues.

The consumer group ``gateway-outbound`` reads the customer, interaction, order and segment
topics. Each batch the broker hands over is applied in one transaction: every event some
endpoint subscribes to becomes one :class:`OutboundMessage` (id ``msg_<event id>``) and one
:class:`OutboundDelivery` per enabled endpoint that wants it; then the offsets are committed.
Both inserts ignore rows that exist, so a batch read twice (a crash before the commit, a
rebalance) queues nothing twice — no inbox row per event is needed, and events no endpoint
wants cost no write at all.

An endpoint receives the events that happened after it was created. Its segment filter uses
membership as SegmentEntered/SegmentExited reported it (kept in ``outbound_segment_member``);
the topics are not ordered against each other, so an event right at a membership change may
fall on either side of it. Endpoint changes reach this consumer within ``cache_s`` (at once in
the process that made them).

CustomerErased empties the payloads of the customer's earlier messages and cancels their
pending deliveries; the erase event itself is still delivered, so partners can erase too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import (
    OutboundDelivery,
    OutboundEndpoint,
    OutboundMessage,
    OutboundSegmentMember,
)
from gateway.outbound.policy import matches
from gateway.outbound.service import OUTBOUND_TOPICS
from shared.db import Database
from shared.events import (
    CustomerErased,
    Envelope,
    EnvelopeError,
    SegmentEntered,
    SegmentExited,
)

__all__ = ["GROUP", "Fanout", "message_id"]

logger = logging.getLogger(__name__)
GROUP = "gateway-outbound"


def message_id(envelope: Envelope) -> str:
    return f"msg_{envelope.id.hex}"


def _payload(envelope: Envelope) -> bytes:
    body = {
        "type": envelope.type,
        "timestamp": envelope.time.isoformat(),
        "data": json.loads(envelope.data),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: UUID
    event_types: list[str]
    segment_id: UUID | None
    enabled: bool
    created_at: datetime


class Fanout:
    def __init__(
        self,
        database: Database,
        bootstrap_servers: str,
        *,
        on_queued: Callable[[], None] = lambda: None,
        cache_s: float = 2.0,
        fetch_max_wait_ms: int = 20,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._database = database
        self._bootstrap = bootstrap_servers
        self._on_queued = on_queued
        self._cache_s = cache_s
        self._options = {
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(session_timeout_ms // 4, 500),
        }
        self._endpoints: list[_Endpoint] = []
        self._loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.assigned = asyncio.Event()

    def invalidate(self) -> None:
        """Endpoints changed: read them again before the next batch."""
        self._loaded_at = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbound-fanout")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch at hand and commit its offsets (for up to ``timeout`` seconds,
        then cancel: a batch cut short is read again by the next member — its writes are
        idempotent), then leave the group."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                *OUTBOUND_TOPICS,
                bootstrap_servers=self._bootstrap,
                group_id=GROUP,
                client_id=f"{GROUP}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **self._options,
            )
            try:
                await consumer.start()
                backoff = 0.5
                while not self._stopping.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                    if consumer.assignment():
                        self.assigned.set()
                    if not batches:
                        continue
                    envelopes = []
                    for tp, records in batches.items():
                        for record in records:
                            try:
                                envelopes.append(
                                    Envelope.from_kafka(tp.topic, record.value, record.headers)
                                )
                            except EnvelopeError as exc:
                                logger.error("outbound: skipping an unreadable event: %s", exc)
                    await self.apply(envelopes)
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbound fan-out: %s; restarting in %.1fs", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.assigned.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _load_endpoints(self) -> list[_Endpoint]:
        if time.monotonic() - self._loaded_at > self._cache_s:
            async with self._database.session() as session:
                rows = await session.execute(
                    select(
                        OutboundEndpoint.id,
                        OutboundEndpoint.event_types,
                        OutboundEndpoint.segment_id,
                        OutboundEndpoint.enabled,
                        OutboundEndpoint.created_at,
                    )
                )
                self._endpoints = [_Endpoint(*row) for row in rows]
            self._loaded_at = time.monotonic()
        return self._endpoints

    async def apply(self, envelopes: list[Envelope]) -> int:
        """Queue the deliveries of one batch, in one transaction; returns how many."""
        endpoints = await self._load_endpoints()
        if not endpoints:
            return 0
        messages: dict[str, dict[str, Any]] = {}
        deliveries: list[dict[str, Any]] = []
        async with self._database.session() as session:
            members = await self._members(session, endpoints, envelopes)
            for envelope in envelopes:
                customer_id = UUID(envelope.subject)
                if envelope.type == CustomerErased.event_type:
                    await self._erase(session, customer_id)
                    for message in messages.values():
                        if message["customer_id"] == customer_id:
                            message.update(payload=b"{}", erased=True)
                    deliveries = [d for d in deliveries if d["customer_id"] != customer_id]
                await self._track_membership(session, envelope, members)
                wanted = [
                    e
                    for e in endpoints
                    if envelope.time >= e.created_at and matches(e.event_types, envelope.type)
                ]
                if not wanted:
                    continue
                msg = message_id(envelope)
                messages[msg] = {
                    "id": msg,
                    "event_type": envelope.type,
                    "customer_id": customer_id,
                    "payload": _payload(envelope),
                    "erased": False,
                    "traceparent": envelope.extensions.get("traceparent"),
                    "created_at": envelope.time,
                }
                deliveries += [
                    {"endpoint_id": e.id, "message_id": msg, "customer_id": customer_id}
                    for e in wanted
                    if e.enabled
                    and (e.segment_id is None or (e.segment_id, customer_id) in members)
                ]
            if messages:
                await session.execute(
                    pg_insert(OutboundMessage).on_conflict_do_nothing(), list(messages.values())
                )
            if deliveries:
                await session.execute(
                    pg_insert(OutboundDelivery).on_conflict_do_nothing(), deliveries
                )
        if deliveries:
            self._on_queued()
        return len(deliveries)

    async def _members(
        self, session: AsyncSession, endpoints: list[_Endpoint], envelopes: list[Envelope]
    ) -> set[tuple[UUID, UUID]]:
        segments = {e.segment_id for e in endpoints if e.segment_id is not None}
        if not segments:
            return set()
        customers = {UUID(e.subject) for e in envelopes}
        rows = await session.execute(
            select(OutboundSegmentMember.segment_id, OutboundSegmentMember.customer_id).where(
                OutboundSegmentMember.segment_id.in_(segments),
                OutboundSegmentMember.customer_id.in_(customers),
            )
        )
        return {(s, c) for s, c in rows}

    @staticmethod
    async def _track_membership(
        session: AsyncSession, envelope: Envelope, members: set[tuple[UUID, UUID]]
    ) -> None:
        event = envelope.event() if envelope.type in _MEMBERSHIP else None
        if isinstance(event, SegmentEntered):
            members.add((event.segment_id, event.customer_id))
            await session.execute(
                pg_insert(OutboundSegmentMember)
                .values(segment_id=event.segment_id, customer_id=event.customer_id)
                .on_conflict_do_nothing()
            )
        elif isinstance(event, SegmentExited):
            members.discard((event.segment_id, event.customer_id))
            await session.execute(
                delete(OutboundSegmentMember).where(
                    OutboundSegmentMember.segment_id == event.segment_id,
                    OutboundSegmentMember.customer_id == event.customer_id,
                )
            )

    @staticmethod
    async def _erase(session: AsyncSession, customer_id: UUID) -> None:
        await session.execute(
            update(OutboundDelivery)
            .where(
                OutboundDelivery.customer_id == customer_id, OutboundDelivery.status == "pending"
            )
            .values(status="cancelled", finished_at=func.now())
        )
        await session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.customer_id == customer_id)
            .values(payload=b"{}", erased=True)
        )
        await session.execute(
            delete(OutboundSegmentMember).where(OutboundSegmentMember.customer_id == customer_id)
        )


_MEMBERSHIP = frozenset({SegmentEntered.event_type, SegmentExited.event_type})
