"""Segment membership: incremental per customer, full per segment, always the same SQL.

* :func:`reevaluate` — after an event changed some of a customer's features (``changed``:
  column names, ``event:<type>``, ``segment:<id>``), evaluate that customer against only the
  dynamic segments that read one of them, in one statement, and apply the differences.
* :func:`recompute` — after a segment was created or its rule edited: the rule compiled to
  one set-based statement over every customer's features; only the differences are written
  and published. Segments that include it through ``member_of`` are recomputed with it.

Both publish ``SegmentEntered`` / ``SegmentExited`` through the outbox, in the caller's
transaction. A segment's version is recorded on each membership row; versions never mix:
a recompute holds the segment's advisory lock exclusively while it rewrites the membership
at the new version, and an incremental evaluation holds it shared and checks, in its own
snapshot taken after the lock, that the definitions it compiled are still current (else it
compiles again).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.rules import (
    SegmentDef,
    compile_rule,
    inputs,
    parse,
    recheck_sql,
    time_relative,
    time_terms,
)
from services.segmentation.rules.compile import FEATURES, MEMBERS
from shared.db import driver_connection
from shared.events import Event, SegmentEntered, SegmentExited
from shared.messaging import publish

__all__ = [
    "Catalog",
    "Change",
    "load_catalog",
    "lock_segments",
    "publish_changes",
    "recompute",
    "reevaluate",
]

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = zlib.crc32(b"rapport.segmentation.segment") - 2**31
SEGMENTS = "segmentation.segment"


@dataclass(frozen=True)
class Change:
    segment_id: UUID
    customer_id: UUID
    entered: bool
    version: int


class Catalog(dict[UUID, SegmentDef]):
    """Every segment (id → definition) as of one snapshot, with derived plans cached."""

    fingerprint: tuple[tuple[UUID, int], ...]

    def __init__(self, defs: Iterable[SegmentDef]) -> None:
        super().__init__((d.id, d) for d in defs)
        self.fingerprint = tuple(sorted((d.id, d.version) for d in self.values()))
        self._inputs: dict[UUID, set[str]] = {}

    def dynamic(self) -> list[SegmentDef]:
        return sorted((d for d in self.values() if d.node is not None), key=lambda d: d.id)

    def inputs_of(self, segment_id: UUID) -> set[str]:
        if segment_id not in self._inputs:
            node = self[segment_id].node
            self._inputs[segment_id] = inputs(node, self) if node is not None else set()
        return self._inputs[segment_id]

    def dependents(self, segment_id: UUID) -> list[UUID]:
        """Segments that reach ``segment_id`` through ``member_of``, nearest first."""
        found: list[UUID] = []
        frontier = [segment_id]
        while frontier:
            current = frontier.pop(0)
            for d in self.values():
                if current in d.refers_to and d.id not in found and d.id != segment_id:
                    found.append(d.id)
                    frontier.append(d.id)
        return found


_parsed: dict[tuple[UUID, int], Any] = {}


def _definition(row: asyncpg.Record) -> SegmentDef:
    node = None
    if row["rule"] is not None:
        key = (row["id"], row["version"])
        node = _parsed.get(key)
        if node is None:
            raw = row["rule"]
            node, errors = parse(json.loads(raw) if isinstance(raw, str) else raw)
            if errors:  # stored rules were validated; a later, stricter parser may refuse
                logger.error("segment %s v%s no longer parses: %s", *key, errors)
                node = None
            if len(_parsed) > 10_000:
                _parsed.clear()
            _parsed[key] = node
    return SegmentDef(row["id"], row["kind"], row["version"], node, tuple(row["refers_to"] or ()))


async def load_catalog(driver: asyncpg.Connection) -> Catalog:
    rows = await driver.fetch(f"SELECT id, kind, version, rule, refers_to FROM {SEGMENTS}")
    return Catalog(_definition(r) for r in rows)


async def lock_segments(
    driver: asyncpg.Connection, ids: Iterable[UUID], *, exclusive: bool = False
) -> None:
    """Transaction-scoped advisory locks on segments, always taken in id order."""
    ordered = sorted({str(i) for i in ids})
    if not ordered:
        return
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await driver.execute(
        f"SELECT {fn}($1::int, hashtext(x)) FROM "
        "(SELECT x FROM unnest($2::text[]) AS x ORDER BY x) AS ordered",
        LOCK_NAMESPACE,
        ordered,
    )


async def _fingerprint(driver: asyncpg.Connection) -> tuple[tuple[UUID, int], ...]:
    rows = await driver.fetch(f"SELECT id, version FROM {SEGMENTS}")
    return tuple(sorted((r["id"], r["version"]) for r in rows))


async def reevaluate(
    session: AsyncSession,
    customer_ids: Sequence[UUID],
    changed: set[str] | None,
    now: datetime,
) -> list[Change]:
    """Re-evaluate ``customer_ids`` against the dynamic segments that read ``changed``
    (``None``: all of them, and refresh each customer's ``recheck_at``)."""
    if not customer_ids:
        return []
    driver = await driver_connection(session)
    for _attempt in range(5):
        catalog = await load_catalog(driver)
        dynamic = catalog.dynamic()
        affected = [d for d in dynamic if changed is None or catalog.inputs_of(d.id) & changed]
        if not affected and changed is not None:
            return []
        await lock_segments(driver, (d.id for d in affected))
        timed = [d for d in dynamic if d.node is not None and time_relative(d.node, catalog)]
        terms: set[str] = set()
        for d in timed:
            assert d.node is not None
            terms |= time_terms(d.node, catalog)
        columns = [
            f"{compile_rule(d.node, catalog)} AS s{i}"  # type: ignore[arg-type]
            for i, d in enumerate(affected)
        ]
        rows = await driver.fetch(
            f"SELECT f.customer_id, $1::timestamptz AS _now, f.recheck_at AS old_recheck, {recheck_sql(terms)} AS recheck, "
            f"ARRAY(SELECT m.segment_id FROM {MEMBERS} m WHERE m.customer_id = f.customer_id "
            "AND m.segment_id = ANY($3::uuid[])) AS current, "
            f"(SELECT array_agg(s.id::text || ':' || s.version) FROM {SEGMENTS} s) AS versions"
            + "".join(f", {c}" for c in columns)
            + f" FROM {FEATURES} f WHERE f.customer_id = ANY($2::uuid[])",
            now,
            list(customer_ids),
            [d.id for d in affected],
        )
        if rows and _versions(rows[0]["versions"]) != catalog.fingerprint:
            continue  # a definition changed under us: compile again
        break
    else:  # pragma: no cover - five edits in a row during one evaluation
        raise RuntimeError("segment definitions kept changing during evaluation")
    changes: list[Change] = []
    rechecks: list[tuple[UUID, datetime | None]] = []
    for row in rows:
        current = set(row["current"])
        for i, d in enumerate(affected):
            member = bool(row[f"s{i}"])
            if member and d.id not in current:
                changes.append(Change(d.id, row["customer_id"], True, d.version))
            elif not member and d.id in current:
                changes.append(Change(d.id, row["customer_id"], False, d.version))
        if row["recheck"] != row["old_recheck"]:
            rechecks.append((row["customer_id"], row["recheck"]))
    if rechecks:
        await driver.executemany(
            f"UPDATE {FEATURES} SET recheck_at = $2 WHERE customer_id = $1", rechecks
        )
    await apply_changes(session, changes, now)
    return changes


def _versions(raw: list[str] | None) -> tuple[tuple[UUID, int], ...]:
    pairs = (item.split(":") for item in raw or ())
    return tuple(sorted((UUID(i), int(v)) for i, v in pairs))


async def apply_changes(
    session: AsyncSession, changes: Sequence[Change], now: datetime, *, write: bool = True
) -> None:
    """Write entries and exits (unless the caller already did) and publish them, in the
    caller's transaction."""
    if not changes:
        return
    if not write:
        await publish_changes(session, changes, now)
        return
    driver = await driver_connection(session)
    entered = [c for c in changes if c.entered]
    exited = [c for c in changes if not c.entered]
    if entered:
        await driver.execute(
            f"INSERT INTO {MEMBERS} (segment_id, customer_id, version, entered_at) "
            "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[]) "
            "ON CONFLICT (segment_id, customer_id) DO UPDATE SET version = EXCLUDED.version",
            [c.segment_id for c in entered],
            [c.customer_id for c in entered],
            [c.version for c in entered],
            [now] * len(entered),
        )
    if exited:
        await driver.execute(
            f"DELETE FROM {MEMBERS} m USING unnest($1::uuid[], $2::uuid[]) AS x(s, c) "
            "WHERE m.segment_id = x.s AND m.customer_id = x.c",
            [c.segment_id for c in exited],
            [c.customer_id for c in exited],
        )
    await publish_changes(session, changes, now)


async def publish_changes(session: AsyncSession, changes: Sequence[Change], now: datetime) -> None:
    events: list[Event] = [
        SegmentEntered(
            customer_id=c.customer_id,
            segment_id=c.segment_id,
            entered_at=now,
            segment_version=c.version,
        )
        if c.entered
        else SegmentExited(
            customer_id=c.customer_id,
            segment_id=c.segment_id,
            exited_at=now,
            segment_version=c.version,
        )
        for c in changes
    ]
    for start in range(0, len(events), 5_000):
        await publish(session, *events[start : start + 5_000])


@dataclass(frozen=True)
class Recomputed:
    segment_id: UUID
    version: int
    entered: int
    exited: int


async def recompute(
    session: AsyncSession, segment_id: UUID, now: datetime, *, publish_events: bool = True
) -> list[Recomputed]:
    """Bring ``segment_id``'s membership (and its dependents') to its current definition."""
    driver = await driver_connection(session)
    catalog = await load_catalog(driver)
    order = [segment_id, *catalog.dependents(segment_id)]
    await lock_segments(driver, order, exclusive=True)
    catalog = await load_catalog(driver)  # definitions as of after the lock
    results = []
    for sid in order:
        target = catalog.get(sid)
        if target is None or target.node is None:
            continue
        rule = compile_rule(target.node, catalog, bulk=True)
        rows = await driver.fetch(
            f"WITH target AS MATERIALIZED (SELECT f.customer_id FROM {FEATURES} f WHERE {rule}), "
            f"upserted AS (INSERT INTO {MEMBERS} AS m (segment_id, customer_id, version, "
            "entered_at) SELECT $2::uuid, t.customer_id, $3::int, $1::timestamptz FROM target t "
            "ON CONFLICT (segment_id, customer_id) DO UPDATE SET version = EXCLUDED.version "
            "WHERE m.version <> EXCLUDED.version RETURNING m.customer_id, (xmax = 0) AS fresh), "
            f"removed AS (DELETE FROM {MEMBERS} m WHERE m.segment_id = $2::uuid AND NOT EXISTS "
            "(SELECT 1 FROM target t WHERE t.customer_id = m.customer_id) "
            "RETURNING m.customer_id) "
            "SELECT customer_id, TRUE AS entered FROM upserted WHERE fresh "
            "UNION ALL SELECT customer_id, FALSE FROM removed",
            now,
            sid,
            target.version,
        )
        changes = [Change(sid, r["customer_id"], r["entered"], target.version) for r in rows]
        if publish_events:
            await publish_changes(session, changes, now)
        if time_relative(target.node, catalog):
            await _schedule_rechecks(driver, time_terms(target.node, catalog), now)
        await driver.execute(f"UPDATE {SEGMENTS} SET recomputed_at = $2 WHERE id = $1", sid, now)
        entered = sum(1 for c in changes if c.entered)
        results.append(Recomputed(sid, target.version, entered, len(changes) - entered))
    return results


async def _schedule_rechecks(driver: asyncpg.Connection, terms: set[str], now: datetime) -> None:
    """Pull ``recheck_at`` forward where this rule's answer changes sooner by itself."""
    at = recheck_sql(terms)
    await driver.execute(
        f"UPDATE {FEATURES} f SET recheck_at = r.at FROM "
        f"(SELECT f.customer_id, {at} AS at FROM {FEATURES} f) AS r "
        "WHERE f.customer_id = r.customer_id AND r.at IS NOT NULL "
        "AND (f.recheck_at IS NULL OR r.at < f.recheck_at)",
        now,
    )
