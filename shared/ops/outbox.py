"""``rapport outbox status``: what each part's outbox still holds.

A healthy outbox is empty or nearly so (its relay sends within milliseconds of a commit); a
growing backlog or an old oldest row means the relay cannot reach the broker, or no replica
holds the relay lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.ops.backup import targets

__all__ = ["OutboxStatus", "outbox_status"]


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    part: str
    backlog: int
    #: Seconds since the oldest unsent row was committed (0 when empty).
    oldest_age_s: float
    #: Rows per topic.
    topics: dict[str, int]
    #: ``None`` when the part's schema is not migrated or unreachable.
    error: str | None = None


async def outbox_status(
    parts: list[str] | None = None, url: str | None = None
) -> list[OutboxStatus]:
    result = []
    for target in targets(parts, url):
        try:
            conn = await asyncpg.connect(target.url)
        except (OSError, asyncpg.PostgresError) as exc:
            result.append(OutboxStatus(target.part, 0, 0.0, {}, f"unreachable: {exc}"))
            continue
        try:
            rows = await conn.fetch(
                "SELECT topic, count(*) AS n, "
                "extract(epoch FROM now() - min(created_at))::float8 AS age "
                f'FROM "{target.schema}".outbox GROUP BY topic ORDER BY topic'
            )
        except asyncpg.UndefinedTableError:
            result.append(OutboxStatus(target.part, 0, 0.0, {}, "no outbox table (not migrated?)"))
            continue
        finally:
            await conn.close()
        result.append(
            OutboxStatus(
                target.part,
                sum(r["n"] for r in rows),
                max((r["age"] for r in rows), default=0.0),
                {r["topic"]: r["n"] for r in rows},
            )
        )
    return result
