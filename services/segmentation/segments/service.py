"""Segment writes: validate the rule at the edge, store the definition, bring the membership
up to date in the same transaction (so a failure leaves nothing half-written)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.models import Segment
from services.segmentation.rules import (
    check_references,
    compile_rule,
    inputs,
    parse,
    time_relative,
)
from services.segmentation.rules.catalog import SegmentDef, member_refs
from services.segmentation.rules.nodes import Node
from services.segmentation.segments.membership import (
    Catalog,
    Change,
    Recomputed,
    apply_changes,
    load_catalog,
    lock_segments,
    recompute,
    reevaluate,
)
from services.segmentation.segments.repository import SegmentRepository
from services.segmentation.segments.schemas import SegmentCreate, SegmentPatch
from shared.auth import Principal
from shared.db import driver_connection
from shared.errors import Conflict, raise_if_invalid

__all__ = [
    "change_members",
    "create",
    "delete",
    "preview",
    "replace_members",
    "update",
    "validate_rule",
]


async def validate_rule(
    session: AsyncSession, raw: Any, *, self_id: UUID | None, pointer: str = "/body/rule"
) -> tuple[Node, Catalog]:
    """The rule's nodes and the catalog it was checked against, or a 422 listing problems."""
    node, errors = parse(raw, pointer)
    raise_if_invalid(errors)
    assert node is not None
    catalog = await load_catalog(await driver_connection(session))
    raise_if_invalid(check_references(node, catalog, self_id=self_id, pointer=pointer))
    return node, catalog


def _derived(segment: Segment, node: Node, catalog: Catalog) -> None:
    with_self = Catalog([*catalog.values(), SegmentDef(segment.id, "dynamic", 0, node)])
    segment.inputs = sorted(inputs(node, with_self))
    segment.refers_to = list(dict.fromkeys(ref for ref, _ in member_refs(node)))
    segment.time_relative = time_relative(node, with_self)


async def create(
    session: AsyncSession, body: SegmentCreate, principal: Principal, now: datetime
) -> tuple[Segment, list[Recomputed]]:
    segment = Segment(
        id=uuid4(),
        name=body.name,
        description=body.description,
        kind=body.kind,
        rule=body.rule,
        version=1,
        created_by=principal.subject,
        created_at=now,
        updated_at=now,
        inputs=[],
        refers_to=[],
        time_relative=False,
    )
    if body.rule is not None:
        node, catalog = await validate_rule(session, body.rule, self_id=segment.id)
        _derived(segment, node, catalog)
    session.add(segment)
    await session.flush()
    if body.kind == "dynamic":
        return segment, await recompute(session, segment.id, now)
    added = await SegmentRepository(session).add_members(segment.id, body.customer_ids, 1, now)
    await apply_changes(session, [Change(segment.id, c, True, 1) for c in added], now, write=False)
    segment.recomputed_at = now
    return segment, [Recomputed(segment.id, 1, len(added), 0)]


async def update(
    session: AsyncSession, segment: Segment, body: SegmentPatch, now: datetime
) -> list[Recomputed]:
    fields = body.model_fields_set
    if "name" in fields and body.name is not None:
        segment.name = body.name
    if "description" in fields:
        segment.description = body.description
    segment.updated_at = now
    if "rule" not in fields:
        await session.flush()
        return []
    if segment.kind == "static" or body.rule is None:
        raise Conflict(
            "a static segment has no rule; change its members instead"
            if segment.kind == "static"
            else "a dynamic segment needs a rule",
            errors=[{"pointer": "/body/rule", "detail": "not allowed", "code": "kind-mismatch"}],
        )
    node, catalog = await validate_rule(session, body.rule, self_id=segment.id)
    if json.dumps(body.rule, sort_keys=True) == json.dumps(segment.rule, sort_keys=True):
        await session.flush()
        return []  # the same rule again is not a new version
    segment.rule = body.rule
    segment.version += 1
    _derived(segment, node, catalog)
    await session.flush()
    return await recompute(session, segment.id, now)


async def delete(session: AsyncSession, segment: Segment, now: datetime) -> int:
    """Delete the segment; its members are told they left. Refused while another segment
    includes it through member_of."""
    catalog = await load_catalog(await driver_connection(session))
    users = [d.id for d in catalog.values() if segment.id in d.refers_to]
    if users:
        raise Conflict(
            f"segment {segment.id} is used by member_of in {', '.join(map(str, users))}",
            used_by=[str(u) for u in users],
        )
    await lock_segments(await driver_connection(session), [segment.id], exclusive=True)
    members = await SegmentRepository(session).all_members(segment.id)
    await apply_changes(
        session, [Change(segment.id, c, False, segment.version) for c in members], now, write=False
    )
    await session.delete(segment)
    await session.flush()
    return len(members)


async def change_members(
    session: AsyncSession,
    segment: Segment,
    add: Sequence[UUID],
    remove: Sequence[UUID],
    now: datetime,
    *,
    pointer: str = "/body",
) -> tuple[int, int]:
    if segment.kind != "static":
        raise Conflict(
            "a dynamic segment's members follow its rule; edit the rule instead",
            errors=[{"pointer": pointer, "detail": "not allowed", "code": "kind-mismatch"}],
        )
    both = set(add) & set(remove)
    raise_if_invalid(
        [
            {"pointer": f"{pointer}/remove", "detail": f"{c} is also in add", "code": "conflicting"}
            for c in sorted(both, key=str)[:20]
        ]
    )
    await lock_segments(await driver_connection(session), [segment.id], exclusive=True)
    repo = SegmentRepository(session)
    added = await repo.add_members(segment.id, add, segment.version, now)
    removed = await repo.remove_members(segment.id, remove)
    changes = [Change(segment.id, c, True, segment.version) for c in added] + [
        Change(segment.id, c, False, segment.version) for c in removed
    ]
    await apply_changes(session, changes, now, write=False)
    # Dynamic segments that include this list through member_of follow it.
    touched: Sequence[UUID] = [*added, *removed]
    if touched:
        await reevaluate(session, touched, {f"segment:{segment.id}"}, now)
    segment.updated_at = now
    return len(added), len(removed)


async def replace_members(
    session: AsyncSession, segment: Segment, wanted: Sequence[UUID], now: datetime
) -> tuple[int, int]:
    """Make the list exactly ``wanted`` (an upload in ``replace`` mode)."""
    keep = set(wanted)
    current = await SegmentRepository(session).all_members(segment.id)
    return await change_members(
        session, segment, wanted, [c for c in current if c not in keep], now
    )


async def preview(
    session: AsyncSession, raw: Any, sample_size: int, principal: Principal, now: datetime
) -> tuple[int, list[UUID]]:
    node, catalog = await validate_rule(session, raw, self_id=None)
    rule_sql = compile_rule(node, catalog, bulk=True)
    return await SegmentRepository(session).preview(rule_sql, principal, now, sample_size)
