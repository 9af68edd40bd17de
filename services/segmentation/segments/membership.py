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
at the new version, and an incremental evaluation holds it shared and writes only if, in
its statement's snapshot (taken after the lock), the definitions are the ones it compiled
(else it compiles again and retries).

Lock order: the feature table before any segment lock. An evaluation takes the table in
``ROW EXCLUSIVE`` mode (it writes ``recheck_at``) before its segment locks; a recompute takes
it in ``EXCLUSIVE`` mode first, which waits for every transaction writing or row-locking
features and holds new ones off until it commits. So a recompute reads every committed
feature (an event's evaluation that ran without the new definition has committed first),
an event's evaluation that follows sees the new definition, and a recompute's bulk write
of ``recheck_at`` never waits on a row an event holds (which deadlocked before: the event
waiting for the segment's lock, the recompute for the event's row).
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
    "LOCK_NAMESPACE",
    "Catalog",
    "Change",
    "Recomputed",
    "apply_changes",
    "load_catalog",
    "lock_segments",
    "publish_changes",
    "recompute",
    "reevaluate",
    "segments_to_lock",
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
    """Transaction-scoped advisory locks on segments, always taken in id order, after the
    feature table's ``ROW EXCLUSIVE`` lock (the module's lock order), in one round trip."""
    ordered = sorted({str(UUID(str(i))) for i in ids})  # canonical text: safe as literals
    if not ordered:
        return
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    texts = ",".join(f"'{x}'" for x in ordered)
    await driver.execute(
        f"LOCK TABLE {FEATURES} IN ROW EXCLUSIVE MODE; "
        f"SELECT {fn}({LOCK_NAMESPACE}, hashtext(x)) FROM "
        f"(SELECT x FROM unnest(ARRAY[{texts}]::text[]) AS x ORDER BY x) AS ordered"
    )


async def _lock_features(driver: asyncpg.Connection, mode: str) -> None:
    """The feature table's lock, taken before any segment lock (the module's lock order)."""
    await driver.execute(f"LOCK TABLE {FEATURES} IN {mode} MODE")


async def _fingerprint(driver: asyncpg.Connection) -> tuple[tuple[UUID, int], ...]:
    rows = await driver.fetch(f"SELECT id, version FROM {SEGMENTS}")
    return tuple(sorted((r["id"], r["version"]) for r in rows))


#: The catalog of the last evaluation: reused while the segments' versions stay the same
#: (each evaluation checks them in its own snapshot), so an event costs no catalog read.
_last_catalog: Catalog | None = None


def _fingerprint_text(fingerprint: tuple[tuple[UUID, int], ...]) -> str:
    return ",".join(f"{i}:{v}" for i, v in sorted(fingerprint, key=lambda p: str(p[0])))


def segments_to_lock(changed: set[str]) -> list[UUID]:
    """The segments an evaluation of ``changed`` will read, by the last catalog seen (a
    caller may take their shared locks early, in a statement it runs anyway)."""
    catalog = _last_catalog
    if catalog is None:
        return []
    return [d.id for d in catalog.dynamic() if catalog.inputs_of(d.id) & changed]


async def reevaluate(
    session: AsyncSession,
    customer_ids: Sequence[UUID],
    changed: set[str] | None,
    now: datetime,
    *,
    locked: Sequence[UUID] = (),
) -> list[Change]:
    """Re-evaluate ``customer_ids`` against the dynamic segments that read ``changed``
    (``None``: all of them) and apply the differences, in one statement; refresh each
    customer's ``recheck_at``. ``locked``: segments whose shared locks the caller holds."""
    global _last_catalog
    if not customer_ids:
        return []
    driver = await driver_connection(session)
    catalog = _last_catalog or await load_catalog(driver)
    held = set(locked)
    for _attempt in range(5):
        dynamic = catalog.dynamic()
        affected = [d for d in dynamic if changed is None or catalog.inputs_of(d.id) & changed]
        if not affected and changed is not None:
            if not held:
                # The feature table's lock first (lock_segments takes it otherwise), so that
                # a recompute in progress is waited for and then seen by the check.
                await _lock_features(driver, "ROW EXCLUSIVE")
            if await _fingerprint(driver) == catalog.fingerprint:
                _last_catalog = catalog
                return []
            catalog = await load_catalog(driver)
            continue
        missing = [d.id for d in affected if d.id not in held]
        await lock_segments(driver, missing)
        held.update(missing)
        # One statement evaluates and applies the differences, guarded: its snapshot was
        # taken after the locks, and it writes only if the definitions it sees are the
        # ones compiled (else: compile again and retry).
        rows = await driver.fetch(
            _evaluation_sql(catalog, affected),
            now,
            list(customer_ids),
            [d.id for d in affected],
            [d.version for d in affected],
            _fingerprint_text(catalog.fingerprint),
        )
        if rows and rows[0]["fingerprint"] == _fingerprint_text(catalog.fingerprint):
            _last_catalog = catalog
            break
        catalog = await load_catalog(driver)
    else:  # pragma: no cover - five edits in a row during one evaluation
        raise RuntimeError("segment definitions kept changing during evaluation")
    versions = {d.id: d.version for d in affected}
    changes = [
        Change(r["segment_id"], r["customer_id"], r["entered"], versions[r["segment_id"]])
        for r in rows
        if r["segment_id"] is not None
    ]
    await publish_changes(session, changes, now)
    return changes


_sql_cache: dict[tuple[Any, ...], str] = {}


def _evaluation_sql(catalog: Catalog, affected: Sequence[SegmentDef]) -> str:
    key = (catalog.fingerprint, tuple(d.id for d in affected))
    sql = _sql_cache.get(key)
    if sql is not None:
        return sql
    terms: set[str] = set()
    for d in catalog.dynamic():
        if d.node is not None and time_relative(d.node, catalog):
            terms |= time_terms(d.node, catalog)
    wanted = ", ".join(compile_rule(d.node, catalog) for d in affected if d.node is not None)
    guard = "ok.fingerprint = $5::text"
    sql = (
        "WITH ev AS MATERIALIZED (SELECT f.customer_id, f.recheck_at AS old_recheck, "
        f"{recheck_sql(terms)} AS recheck, ARRAY[{wanted}]::boolean[] AS want "
        f"FROM {FEATURES} f WHERE f.customer_id = ANY($2::uuid[])), "
        "ok AS MATERIALIZED (SELECT coalesce((SELECT string_agg(s.id::text || ':' || "
        f"s.version, ',' ORDER BY s.id::text) FROM {SEGMENTS} s), '') AS fingerprint), "
        "pairs AS MATERIALIZED (SELECT ev.customer_id, x.sid, x.ver, ev.want[x.i] AS want, "
        f"EXISTS (SELECT 1 FROM {MEMBERS} m WHERE m.segment_id = x.sid "
        "AND m.customer_id = ev.customer_id) AS have FROM ev CROSS JOIN "
        "unnest($3::uuid[], $4::int[]) WITH ORDINALITY AS x(sid, ver, i)), "
        f"ins AS (INSERT INTO {MEMBERS} (segment_id, customer_id, version, entered_at) "
        f"SELECT p.sid, p.customer_id, p.ver, $1::timestamptz FROM pairs p, ok WHERE {guard} "
        "AND p.want AND NOT p.have ON CONFLICT (segment_id, customer_id) DO NOTHING "
        "RETURNING segment_id, customer_id), "
        f"del AS (DELETE FROM {MEMBERS} m USING pairs p, ok WHERE {guard} "
        "AND m.segment_id = p.sid AND m.customer_id = p.customer_id AND NOT p.want AND p.have "
        "RETURNING m.segment_id, m.customer_id), "
        f"rc AS (UPDATE {FEATURES} f SET recheck_at = ev.recheck FROM ev, ok WHERE {guard} "
        "AND f.customer_id = ev.customer_id AND ev.recheck IS DISTINCT FROM ev.old_recheck) "
        "SELECT ok.fingerprint, i.segment_id, i.customer_id, TRUE AS entered "
        "FROM ok LEFT JOIN ins i ON TRUE "
        "UNION ALL SELECT NULL, d.segment_id, d.customer_id, FALSE FROM del d"
    )
    if len(_sql_cache) > 1_000:
        _sql_cache.clear()
    _sql_cache[key] = sql
    return sql


async def _write(
    driver: asyncpg.Connection,
    changes: Sequence[Change],
    now: datetime,
) -> None:
    """Entries and exits decided elsewhere (static lists, deletions), in one statement."""
    if not changes:
        return
    entered = [c for c in changes if c.entered]
    exited = [c for c in changes if not c.entered]
    await driver.execute(
        f"WITH ins AS (INSERT INTO {MEMBERS} (segment_id, customer_id, version, entered_at) "
        "SELECT s, c, v, $6::timestamptz FROM unnest($1::uuid[], $2::uuid[], $3::int[]) "
        "AS x(s, c, v) "
        "ON CONFLICT (segment_id, customer_id) DO UPDATE SET version = EXCLUDED.version), "
        f"del AS (DELETE FROM {MEMBERS} m USING unnest($4::uuid[], $5::uuid[]) AS x(s, c) "
        "WHERE m.segment_id = x.s AND m.customer_id = x.c) SELECT 1",
        [c.segment_id for c in entered],
        [c.customer_id for c in entered],
        [c.version for c in entered],
        [c.segment_id for c in exited],
        [c.customer_id for c in exited],
        now,
    )


async def apply_changes(
    session: AsyncSession, changes: Sequence[Change], now: datetime, *, write: bool = True
) -> None:
    """Write entries and exits (unless the caller already did) and publish them, in the
    caller's transaction."""
    if not changes:
        return
    if write:
        await _write(await driver_connection(session), changes, now)
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
    await _lock_features(driver, "EXCLUSIVE")
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
