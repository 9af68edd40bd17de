"""Running an import job: chunks of rows, each chunk one transaction.

Rows are parsed and normalised ahead of the writer (:mod:`.reader`). A chunk's identity keys
are resolved in one query, then new customers, their identity keys, updates of existing
customers, audit entries ("imported"), row errors, the job's counters and the
``CustomerCreated``/``CustomerUpdated`` outbox rows are written in that chunk's transaction —
the bulk of it by COPY — so a crash loses at most the chunk in flight, and never leaves rows
without their events. The job runs in the service process (a task started after the upload
was accepted). An error marks the job ``failed`` with the reason; if the process dies, the
job's heartbeat goes stale and :func:`fail_interrupted` marks it ``failed`` when customer360
next starts. Jobs are not resumed: rows of committed chunks stay (they are idempotent
upserts), so uploading the file again finishes the work without duplicates.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.imports.parsing import FieldSpec, ImportRow, RowError
from services.customer360.imports.reader import Chunk, ChunkReader
from services.customer360.models import (
    AuditEntry,
    Customer,
    CustomerIdentity,
    CustomFieldDefinition,
    ImportJob,
    ImportRowError,
)
from shared.auth import Principal
from shared.db import Database, driver_connection
from shared.events import CustomerCreated, CustomerUpdated, Event
from shared.messaging import copy_envelopes, publish
from shared.privacy import data_scope

__all__ = ["CHUNK_ROWS", "apply_chunk", "fail_interrupted", "run_job"]

log = logging.getLogger(__name__)
CHUNK_ROWS = 2_000
_MERGED = ("emails", "phones", "tags")


_CUSTOMER_COLUMNS = (
    "id",
    "kind",
    "display_name",
    "emails",
    "phones",
    "tags",
    "external_ids",
    "custom_fields",
    "owner_id",
    "team_id",
)
_JSON_COLUMNS = {"external_ids", "custom_fields", "changes"}


def _json(value: Any) -> str:
    return json.dumps(value) if value else "{}"  # most rows have no external ids or fields


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


async def _copy(
    driver: asyncpg.Connection,
    model: type[Any],
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
) -> None:
    """COPY ``rows`` (dicts keyed by column) into ``model``'s table, in the caller's
    transaction: several times faster than an INSERT per row (see FIELD-NOTES)."""
    table = _table(model)
    await driver.copy_records_to_table(
        table.name,
        schema_name=table.schema,
        columns=columns,
        records=[
            tuple(_json(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns) for row in rows
        ],
    )


async def _owners(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[Any, UUID]:
    """The customers owning any of ``keys``: one query, the keys sent as two arrays."""
    if not keys:
        return {}
    table = _table(CustomerIdentity)
    rows = await (await driver_connection(session)).fetch(
        f"SELECT i.kind, i.value, i.customer_id FROM {table.schema}.{table.name} i"
        " JOIN unnest($1::text[], $2::text[]) AS k(kind, value) USING (kind, value)",
        [k for k, _ in keys],
        [v for _, v in keys],
    )
    return {(r["kind"], r["value"]): r["customer_id"] for r in rows}


class _KeyRace(Exception):
    """An identity key of the chunk was claimed concurrently; the chunk is applied again."""


async def apply_chunk(
    session: AsyncSession,
    job_id: UUID,
    actor: str,
    chunk: Chunk,
    scope: Principal | None = None,
) -> tuple[int, int, int]:
    """Apply one chunk; returns (created, updated, failed).

    With ``scope`` (the uploader), a row whose identity keys belong to a customer outside
    that principal's data scope fails instead of updating it — as creating that customer
    through the API would (``409``): an import is no way around the data scope."""
    now = datetime.now(UTC)
    errors = [e for item in chunk if isinstance(item, list) for e in item]
    failed_rows = {e.number for e in errors}
    rows = [r for r in chunk if isinstance(r, ImportRow)]
    known = await _owners(session, [k for r in rows for k in r.keys])
    # Locked until the chunk commits: a concurrent import updating the same customer waits
    # and then merges into what this one wrote, instead of overwriting it.
    current = {
        c.id: c
        for c in (
            await session.scalars(
                select(Customer)
                .where(Customer.id.in_(set(known.values())))
                .order_by(Customer.id)
                .with_for_update()
            )
        ).all()
    }
    visible = set(current)
    if scope is not None and scope.scope_mode != "all" and current:
        visible = set(
            (
                await session.scalars(
                    select(Customer.id).where(
                        Customer.id.in_(visible),
                        data_scope(scope, Customer.owner_id, Customer.team_id),
                    )
                )
            ).all()
        )
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
        if ids and not ids <= visible | set(new):
            errors.append(
                RowError(row.number, None, "its identity keys belong to another customer")
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

    driver = await driver_connection(session)
    if new:
        await _copy(driver, Customer, _CUSTOMER_COLUMNS, list(new.values()))
    try:
        # New keys go in by COPY: a key claimed by a concurrent writer since we looked fails
        # the chunk, which is rolled back and applied again (it then finds that customer).
        await driver.copy_records_to_table(
            _table(CustomerIdentity).name,
            schema_name=_table(CustomerIdentity).schema,
            columns=["kind", "value", "customer_id"],
            records=[(k, v, c) for (k, v), c in claims.items()],
        )
    except asyncpg.UniqueViolationError:
        raise _KeyRace() from None
    audit: list[dict[str, Any]] = []
    created_events: list[Event] = []
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
        created_events.append(
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
        await _copy(driver, AuditEntry, ("customer_id", "action", "actor", "changes"), audit)
    if errors:
        await session.execute(
            insert(ImportRowError),
            [
                {"job_id": job_id, "row_number": e.number, "field": e.field, "reason": e.reason}
                for e in errors
            ],
        )
    if created_events:
        # Created customers' ids were drawn in this transaction: no other writer can hold
        # their keys, so their events skip the per-key lock (see copy_envelopes).
        await copy_envelopes(session, created_events)
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
    database: Database,
    job_id: UUID,
    path: Path,
    fmt: str,
    delimiter: str,
    actor: str,
    default_region: str | None = None,
    scope: Principal | None = None,
) -> None:
    """Import the spooled file chunk by chunk, then delete it; mark the job done or failed.
    ``scope``: the uploader, whose data scope bounds which customers rows may update."""
    try:
        async with database.session() as session:
            fields = {
                d.key: FieldSpec.of(d)
                for d in (await session.scalars(select(CustomFieldDefinition))).all()
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
        reader = ChunkReader(path, fmt, delimiter, fields, default_region, CHUNK_ROWS)
        async with reader as chunks:
            async for chunk in chunks:
                for attempt in range(3):
                    try:
                        async with database.session() as session:
                            await apply_chunk(session, job_id, actor, chunk, scope)
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
