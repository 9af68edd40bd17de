"""Running an import job: chunks of rows, each chunk one transaction.

A chunk is normalised in Python, its identity keys resolved in one query, then new customers,
their identity keys, updates of existing customers, audit entries ("imported"), row errors,
the job's counters and the ``CustomerCreated``/``CustomerUpdated`` outbox rows are written in
that chunk's transaction — a crash loses at most the chunk in flight, and never leaves rows
without their events. The job runs in the service process (a task started after the upload
was accepted). An error marks the job ``failed`` with the reason; if the process dies, the
job's heartbeat goes stale and :func:`fail_interrupted` marks it ``failed`` when customer360
next starts. Jobs are not resumed: rows of committed chunks stay (they are idempotent
upserts), so uploading the file again finishes the work without duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.customer.identity import owners
from services.customer360.imports.parsing import ImportRow, RowError, read_rows
from services.customer360.models import (
    AuditEntry,
    Customer,
    CustomerIdentity,
    CustomFieldDefinition,
    ImportJob,
    ImportRowError,
)
from shared.db import Database
from shared.events import CustomerCreated, CustomerUpdated, Event
from shared.messaging import publish

__all__ = ["CHUNK_ROWS", "apply_chunk", "fail_interrupted", "run_job"]

log = logging.getLogger(__name__)
CHUNK_ROWS = 2_000
_MERGED = ("emails", "phones", "tags")


def _chunks(
    rows: Iterator[ImportRow | list[RowError]],
) -> Iterator[list[ImportRow | list[RowError]]]:
    chunk: list[ImportRow | list[RowError]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _KeyRace(Exception):
    """An identity key of the chunk was claimed concurrently; the chunk is applied again."""


async def apply_chunk(
    session: AsyncSession, job_id: UUID, actor: str, chunk: list[ImportRow | list[RowError]]
) -> tuple[int, int, int]:
    """Apply one chunk; returns (created, updated, failed)."""
    now = datetime.now(UTC)
    errors = [e for item in chunk if isinstance(item, list) for e in item]
    failed_rows = {e.number for e in errors}
    rows = [r for r in chunk if isinstance(r, ImportRow)]
    known = await owners(session, [k for r in rows for k in r.keys])
    current = {
        c.id: c
        for c in (
            await session.scalars(select(Customer).where(Customer.id.in_(set(known.values()))))
        ).all()
    }
    new: dict[UUID, dict[str, Any]] = {}
    changed: dict[UUID, dict[str, Any]] = {}
    claims: dict[tuple[str, str], UUID] = {}
    for row in rows:
        ids = {known[k] for k in row.keys if k in known} | {
            claims[k] for k in row.keys if k in claims
        }
        if len(ids) > 1:
            errors.append(
                RowError(row.number, None, "its identity keys belong to different customers")
            )
            failed_rows.add(row.number)
            continue
        values: dict[str, Any] = {
            "display_name": row.display_name,
            "emails": row.emails,
            "phones": row.phones,
            "tags": row.tags,
            "external_ids": row.external_ids,
            "custom_fields": row.custom_fields,
            "owner_id": row.owner_id,
            "team_id": row.team_id,
        }
        if not ids:
            customer_id = uuid4()
            new[customer_id] = {"id": customer_id, "kind": "person", **values}
        else:
            customer_id = ids.pop()
            target = new.get(customer_id) or changed.get(customer_id)
            if target is None:
                existing = current[customer_id]
                target = changed[customer_id] = {
                    "display_name": existing.display_name,
                    "emails": list(existing.emails),
                    "phones": list(existing.phones),
                    "tags": list(existing.tags),
                    "external_ids": dict(existing.external_ids),
                    "custom_fields": dict(existing.custom_fields),
                    "owner_id": existing.owner_id,
                    "team_id": existing.team_id,
                }
            # A re-imported row adds to lists and maps, and overwrites what it names.
            target["display_name"] = row.display_name
            for name in _MERGED:
                target[name] = list(dict.fromkeys([*target[name], *values[name]]))
            target["external_ids"] = {**target["external_ids"], **row.external_ids}
            target["custom_fields"] = {**target["custom_fields"], **row.custom_fields}
            for name in ("owner_id", "team_id"):
                if values[name] is not None:
                    target[name] = values[name]
        for key in row.keys:
            if key not in known:
                claims[key] = customer_id

    if new:
        await session.execute(insert(Customer), list(new.values()))
    claim_rows = [{"kind": k, "value": v, "customer_id": c} for (k, v), c in claims.items()]
    claimed = 0
    for start in range(0, len(claim_rows), 5_000):  # 3 parameters a row, 32,767 at most
        result = await session.execute(
            pg_insert(CustomerIdentity)
            .values(claim_rows[start : start + 5_000])
            .on_conflict_do_nothing()
            .returning(CustomerIdentity.kind)
        )
        claimed += len(result.all())
    if claimed < len(claim_rows):
        # A concurrent writer claimed one of these keys since we looked: roll the chunk back
        # and apply it again, which now finds that customer and updates it.
        raise _KeyRace()
    audit: list[dict[str, Any]] = []
    events: list[Event] = []
    for customer_id, values in new.items():
        audit.append(
            {
                "customer_id": customer_id,
                "action": "imported",
                "actor": actor,
                "changes": {
                    k: {"before": None, "after": v} for k, v in values.items() if k != "id" and v
                },
            }
        )
        events.append(
            CustomerCreated(
                customer_id=customer_id,
                display_name=values["display_name"],
                emails=values["emails"],
                phones=values["phones"],
                tags=values["tags"],
                owner_id=values["owner_id"],
                team_id=values["team_id"],
                created_at=now,
            )
        )
    updates: list[dict[str, Any]] = []
    for customer_id, values in changed.items():
        existing = current[customer_id]
        diff = {
            k: {"before": getattr(existing, k), "after": v}
            for k, v in values.items()
            if getattr(existing, k) != v
        }
        if not diff:
            continue
        updates.append({"_id": customer_id, **values})
        audit.append(
            {"customer_id": customer_id, "action": "imported", "actor": actor, "changes": diff}
        )
        events.append(
            CustomerUpdated(
                customer_id=customer_id,
                changes={k: d["after"] for k, d in diff.items()},
                updated_at=now,
                actor=actor,
            )
        )
    if updates:
        table = cast(Table, Customer.__table__)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(
                **{k: bindparam(k) for k in updates[0] if k != "_id"},
                version=table.c.version + 1,
                updated_at=now,
            ),
            updates,
        )
    if audit:
        await session.execute(insert(AuditEntry), audit)
    if errors:
        await session.execute(
            insert(ImportRowError),
            [
                {"job_id": job_id, "row_number": e.number, "field": e.field, "reason": e.reason}
                for e in errors
            ],
        )
    if events:
        await publish(session, *events)
    created, updated_, failed = (
        len(new),
        len(rows) - len(new) - len(failed_rows & {r.number for r in rows}),
        len(failed_rows),
    )
    await session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id)
        .values(
            total=ImportJob.total + len(chunk),
            created=ImportJob.created + created,
            updated=ImportJob.updated + updated_,
            failed=ImportJob.failed + failed,
            heartbeat_at=now,
        )
    )
    return created, updated_, failed


async def run_job(
    database: Database, job_id: UUID, path: Path, fmt: str, delimiter: str, actor: str
) -> None:
    """Import the spooled file chunk by chunk, then delete it; mark the job done or failed."""
    try:
        async with database.session() as session:
            fields = {
                d.key: d for d in (await session.scalars(select(CustomFieldDefinition))).all()
            }
            await session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status="running",
                    started_at=datetime.now(UTC),
                    heartbeat_at=datetime.now(UTC),
                )
            )
        rows = read_rows(path, fmt, delimiter, fields)
        while True:
            # Parsing and normalising is CPU work: off the event loop.
            chunk = await asyncio.to_thread(lambda: next(_chunks(rows), None))
            if chunk is None:
                break
            for attempt in range(3):
                try:
                    async with database.session() as session:
                        await apply_chunk(session, job_id, actor, chunk)
                    break
                except _KeyRace:
                    if attempt == 2:
                        raise
        status, error = "done", None
    except Exception as exc:
        log.exception("import job %s failed", job_id)
        status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    async with database.session() as session:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(status=status, error=error, finished_at=datetime.now(UTC))
        )


STALE_AFTER = timedelta(minutes=5)


async def fail_interrupted(session: AsyncSession) -> int:
    """At start-up: jobs left queued or running by a dead process are marked failed.

    Only jobs without a heartbeat for ``STALE_AFTER``: another replica's live job is left
    alone (a chunk commits in well under a minute).
    """
    stale = datetime.now(UTC) - STALE_AFTER
    result = await session.execute(
        update(ImportJob)
        .where(
            ImportJob.status.in_(("queued", "running")),
            func.coalesce(ImportJob.heartbeat_at, ImportJob.created_at) < stale,
        )
        .values(
            status="failed", error="interrupted: the service stopped", finished_at=datetime.now(UTC)
        )
    )
    return int(getattr(result, "rowcount", 0))
