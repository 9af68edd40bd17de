"""Housekeeping: bookkeeping rows that only matter for a while are deleted once they stop.

- ``idempotency_key`` rows: a retry is honoured for ``idempotency_ttl`` (24 h, as Stripe);
  after that a key may be used again.
- ``inbox`` rows: an event id must be remembered as long as the broker may redeliver it;
  ``inbox_ttl`` (default 14 days) is twice Kafka's default retention.

One task per process runs every ``interval_s``; deletes go in small batches so they never hold
long locks, and every replica may run it (the deletes are idempotent).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.periodic import Periodic

__all__ = ["Housekeeping"]

_BATCH = 5_000


class Housekeeping(Periodic):
    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        *,
        interval_s: float = 600.0,
        idempotency_ttl: timedelta = timedelta(hours=24),
        inbox_ttl: timedelta = timedelta(days=14),
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.name = f"housekeeping-{schema}"
        self.interval_s = interval_s
        self.rules = (
            ("idempotency_key", "created_at", idempotency_ttl),
            ("inbox", "processed_at", inbox_ttl),
        )

    async def run_once(self) -> dict[str, int]:
        """Delete what has expired now; returns the rows deleted per table."""
        deleted: dict[str, int] = {}
        for table, column, ttl in self.rules:
            name = f"{self.schema}.{table}"
            async with self.engine.connect() as conn:
                if await conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is None:
                    continue
                total = 0
                while True:
                    result = await conn.execute(
                        text(
                            f"DELETE FROM {name} WHERE ctid = ANY(ARRAY("
                            f"SELECT ctid FROM {name} WHERE {column} < now() - CAST(:ttl AS interval) "
                            f"LIMIT {_BATCH}))"
                        ),
                        {"ttl": ttl},
                    )
                    await conn.commit()
                    total += result.rowcount or 0
                    if (result.rowcount or 0) < _BATCH:
                        break
                deleted[table] = total
        return deleted

    def report(self, result: dict[str, int]) -> str | None:
        return f"deleted {result}" if any(result.values()) else None
