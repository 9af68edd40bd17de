"""Rules read in Python: the reference the SQL compiler is tested against.

``features`` is a ``customer_features`` row as a mapping of column → value, ``events`` the
customer's event log as ``(type, occurred_at, attrs)``, ``static_members`` the static
segments the customer is in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.segmentation.rules.catalog import Catalog
from services.segmentation.rules.fields import FieldSpec
from services.segmentation.rules.nodes import (
    Condition,
    Group,
    MemberOf,
    Node,
    Not,
    Performed,
    Range,
)

__all__ = ["Facts", "evaluate"]


@dataclass
class Facts:
    features: Mapping[str, Any]
    events: Sequence[tuple[str, datetime, Mapping[str, Any]]] = ()
    static_members: set[UUID] = field(default_factory=set)


def _value(spec: FieldSpec, key: str | None, row: Mapping[str, Any], attrs: bool) -> Any:
    raw = row.get(spec.column)
    if key is not None:
        found = (raw or {}).get(key)
        return Decimal(str(found)) if found is not None else Decimal(0)
    if raw is None:
        return None
    if spec.type in ("int", "decimal") and not isinstance(raw, bool):
        return Decimal(str(raw))
    if attrs and spec.type == "string_list":
        return list(raw) if isinstance(raw, list) else None
    return raw


def _condition(c: Condition, row: Mapping[str, Any], now: datetime, attrs: bool) -> bool:
    if c.op == "exists":
        if c.key is not None:
            return c.key in (row.get(c.field.column) or {})
        value = _value(c.field, None, row, attrs)
        if c.field.type == "string_list":
            return bool(value)
        return value is not None
    x = _value(c.field, c.key, row, attrs)
    if x is None:
        return False
    v = c.value
    match c.op:
        case "eq":
            return bool(x == v)
        case "ne":
            return bool(x != v)
        case "gt":
            return bool(x > v)
        case "gte":
            return bool(x >= v)
        case "lt":
            return bool(x < v)
        case "lte":
            return bool(x <= v)
        case "in" | "not_in":
            assert isinstance(v, tuple)
            if c.field.type == "string_list":
                return any(item in x for item in v)
            return (x in v) == (c.op == "in")
        case "between":
            assert isinstance(v, tuple)
            return bool(v[0] <= x <= v[1])
        case "contains":
            return v in x
        case "range":
            assert isinstance(v, Range)
            if v.lo is not None and not (x >= v.lo if v.lo_inclusive else x > v.lo):
                return False
            return v.hi is None or (x <= v.hi if v.hi_inclusive else x < v.hi)
        case "within_last":
            assert isinstance(v, int)
            return bool(now - timedelta(days=v) < x <= now)
        case "older_than":
            assert isinstance(v, int)
            return bool(x <= now - timedelta(days=v))
    raise ValueError(c.op)


def evaluate(node: Node, facts: Facts, now: datetime, catalog: Catalog) -> bool:
    if isinstance(node, Group):
        results = (evaluate(c, facts, now, catalog) for c in node.children)
        return all(results) if node.op == "all" else any(results)
    if isinstance(node, Not):
        return not evaluate(node.child, facts, now, catalog)
    if isinstance(node, Condition):
        return _condition(node, facts.features, now, attrs=False)
    if isinstance(node, Performed):
        since = now - timedelta(days=node.within_days)
        count = sum(
            1
            for type_, at, attrs in facts.events
            if type_ == node.event
            and since < at <= now
            and all(_condition(c, attrs, now, attrs=True) for c in node.where)
        )
        return count >= node.count if node.at_least else count <= node.count
    assert isinstance(node, MemberOf)
    target = catalog[node.segment_id]
    if target.node is not None:
        return evaluate(target.node, facts, now, catalog)
    return node.segment_id in facts.static_members
