"""A test helper that reads a topic in the background and waits for messages by key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord


class Tail:
    def __init__(self) -> None:
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._changed = asyncio.Condition()

    async def add(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        async with self._changed:
            self.records.extend(records)
            self._changed.notify_all()

    def of(self, key: str) -> list[ConsumerRecord[bytes, bytes]]:
        return [r for r in self.records if r.key == key.encode()]

    async def wait_for(
        self, key: str, *, count: int, timeout: float = 30.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        await self.wait_until(lambda: len(self.of(key)) >= count, timeout=timeout)
        return self.of(key)

    async def wait_until(self, check: Callable[[], bool], *, timeout: float = 30.0) -> None:
        """Until ``check()`` holds for the messages collected so far."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)


@asynccontextmanager
async def tail(
    bootstrap_servers: str, topic: str, *, from_beginning: bool = False
) -> AsyncIterator[Tail]:
    """Collect every message of ``topic`` published after entering (or all of them)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,  # no group: all partitions, no rebalance wait
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    result = Tail()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await asyncio.sleep(0.05)
        for tp in consumer.assignment():  # resolve the start offsets before the test writes
            await consumer.position(tp)

        async def pump() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    await result.add(records)

        task = asyncio.create_task(pump())
        try:
            yield result
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await consumer.stop()
