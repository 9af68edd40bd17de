"""Rules → SQL over ``customer_features`` (alias ``f``), the one definition of membership.

Both the full recompute and the per-customer evaluation run this SQL, so the two can never
disagree; :mod:`.evaluate` is an independent reading of the same semantics, used by the
tests to check this compiler.

Literals are written into the SQL (quoted, typed) rather than bound, so one statement can
evaluate many segments at once; every literal comes from a validated node (numbers are
``Decimal``, instants ``datetime``, strings have no NUL), and strings are quoted by doubling
``'`` (``standard_conforming_strings`` is on in every supported PostgreSQL). The reference
time is always the statement's parameter ``$1`` (``timestamptz``), never ``now()``: tests
and the scheduler pin it.

Two shapes for behaviour conditions: per customer (``bulk=False``) a correlated count on the
event log's ``(customer_id, type, occurred_at)`` index; over every customer (``bulk=True``) one
grouped pass over the log joined as a hashed ``IN`` set.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

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

__all__ = ["EVENTS", "FEATURES", "MEMBERS", "compile_rule", "literal", "time_terms"]

FEATURES = "segmentation.customer_features"
EVENTS = "segmentation.customer_event"
MEMBERS = "segmentation.segment_member"
NOW = "$1::timestamptz"

_SQL_TYPE = {"int": "integer", "decimal": "numeric"}
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal | int):
        return f"{Decimal(value):f}::numeric"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL in a string literal")
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _days(n: int) -> str:
    return f"interval '{int(n)} days'"


def _value_sql(spec: FieldSpec, key: str | None, alias: str) -> str:
    if alias == "e":  # event attributes live in e.attrs
        if spec.type == "string_list":
            return f"(e.attrs -> {literal(spec.column)})"
        text = f"(e.attrs ->> {literal(spec.column)})"
        return f"{text}::{_SQL_TYPE[spec.type]}" if spec.type in _SQL_TYPE else text
    if key is not None:
        return f"COALESCE((f.{spec.column} ->> {literal(key)})::{_SQL_TYPE[spec.type]}, 0)"
    return f"f.{spec.column}"


def _condition(c: Condition, alias: str) -> str:
    x = _value_sql(c.field, c.key, alias)
    jsonb_list = alias == "e" and c.field.type == "string_list"
    if c.op == "exists":
        if c.key is not None:
            sql = f"(f.{c.field.column} ? {literal(c.key)})"
        elif jsonb_list:
            sql = f"(jsonb_typeof({x}) = 'array' AND jsonb_array_length({x}) > 0)"
        elif c.field.type == "string_list":
            sql = f"(cardinality({x}) > 0)"
        else:
            sql = f"({x} IS NOT NULL)"
    elif c.op in _COMPARE:
        sql = f"({x} {_COMPARE[c.op]} {literal(c.value)})"
    elif c.op in ("in", "not_in"):
        assert isinstance(c.value, tuple)
        items = ", ".join(literal(v) for v in c.value)
        if c.field.type == "string_list":
            sql = (
                f"({x} ?| ARRAY[{items}]::text[])"
                if jsonb_list
                else f"({x} && ARRAY[{items}]::varchar[])"
            )
        else:
            sql = f"({x} {'IN' if c.op == 'in' else 'NOT IN'} ({items}))"
    elif c.op == "between":
        assert isinstance(c.value, tuple)
        lo, hi = c.value
        sql = f"({x} BETWEEN {literal(lo)} AND {literal(hi)})"
    elif c.op == "contains":
        if c.field.type == "string_list":
            sql = (
                f"({x} ? {literal(c.value)})" if jsonb_list else f"({literal(c.value)} = ANY({x}))"
            )
        else:
            sql = f"(strpos({x}, {literal(c.value)}) > 0)"
    elif c.op == "range":
        assert isinstance(c.value, Range)
        r = c.value
        parts = []
        if r.lo is not None:
            parts.append(f"{x} {'>=' if r.lo_inclusive else '>'} {literal(r.lo)}")
        if r.hi is not None:
            parts.append(f"{x} {'<=' if r.hi_inclusive else '<'} {literal(r.hi)}")
        sql = "(" + " AND ".join(parts) + ")"
    elif c.op == "within_last":
        assert isinstance(c.value, int)
        sql = f"({x} > {NOW} - {_days(c.value)} AND {x} <= {NOW})"
    elif c.op == "older_than":
        assert isinstance(c.value, int)
        sql = f"({x} <= {NOW} - {_days(c.value)})"
    else:  # pragma: no cover - the parser admits no other operator
        raise ValueError(c.op)
    # A condition on a missing value is false, not unknown: NOT of it is then true, as in
    # the Python reading of the rules.
    return f"COALESCE({sql}, FALSE)"


def _event_filter(p: Performed) -> str:
    where = [
        f"e.type = {literal(p.event)}",
        f"e.occurred_at > {NOW} - {_days(p.within_days)}",
        f"e.occurred_at <= {NOW}",
        *(_condition(c, "e") for c in p.where),
    ]
    return " AND ".join(where)


def _performed(p: Performed, bulk: bool) -> str:
    if p.at_least and p.count == 0:
        return "TRUE"
    if not bulk:
        # Stop counting once the answer is known: LIMIT count + 1 rows at most.
        counted = (
            f"(SELECT count(*) FROM (SELECT 1 FROM {EVENTS} e WHERE e.customer_id = "
            f"f.customer_id AND {_event_filter(p)} LIMIT {p.count + 1}) AS _n)"
        )
        return f"({counted} {'>=' if p.at_least else '<='} {p.count})"
    having = f"count(*) >= {p.count}" if p.at_least else f"count(*) > {p.count}"
    grouped = (
        f"SELECT e.customer_id FROM {EVENTS} e WHERE {_event_filter(p)} "
        f"GROUP BY e.customer_id HAVING {having}"
    )
    return f"(f.customer_id {'IN' if p.at_least else 'NOT IN'} ({grouped}))"


def compile_rule(node: Node, catalog: Catalog, *, bulk: bool = False) -> str:
    """A boolean SQL expression over ``f`` (a ``customer_features`` row); ``$1`` is now."""
    if isinstance(node, Group):
        joiner = " AND " if node.op == "all" else " OR "
        return "(" + joiner.join(compile_rule(c, catalog, bulk=bulk) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"(NOT {compile_rule(node.child, catalog, bulk=bulk)})"
    if isinstance(node, Condition):
        return _condition(node, "f")
    if isinstance(node, Performed):
        return _performed(node, bulk)
    assert isinstance(node, MemberOf)
    target = catalog[node.segment_id]
    if target.node is not None:
        return compile_rule(target.node, catalog, bulk=bulk)
    return (
        f"EXISTS (SELECT 1 FROM {MEMBERS} m WHERE m.segment_id = '{target.id}'::uuid "
        "AND m.customer_id = f.customer_id)"
    )


def time_terms(node: Node, catalog: Catalog) -> set[str]:
    """SQL instants (over ``f``) at which time alone may change the rule's answer.

    The scheduler re-evaluates a customer when the earliest of these that is still in the
    future has come (``recheck_at``). Over-approximations are harmless (one more check).
    """
    if isinstance(node, Group):
        return set().union(*(time_terms(c, catalog) for c in node.children))
    if isinstance(node, Not):
        return time_terms(node.child, catalog)
    if isinstance(node, Condition):
        if node.op in ("within_last", "older_than"):
            assert isinstance(node.value, int)
            return {f"(f.{node.field.column} + {_days(node.value)})"}
        return {"f.windows_change_at"} if node.field.windowed else set()
    if isinstance(node, Performed):
        base = (
            f"FROM {EVENTS} e WHERE e.customer_id = f.customer_id AND e.type = "
            f"{literal(node.event)}"
        )
        return {
            # the oldest event inside the window leaves it …
            f"((SELECT min(e.occurred_at) {base} AND e.occurred_at > {NOW} - "
            f"{_days(node.within_days)} AND e.occurred_at <= {NOW}) + {_days(node.within_days)})",
            # … and a future-dated event enters it
            f"(SELECT min(e.occurred_at) {base} AND e.occurred_at > {NOW})",
        }
    target = catalog.get(node.segment_id)
    if target is None or target.node is None:
        return set()
    return time_terms(target.node, catalog)


def recheck_sql(terms: set[str]) -> str:
    """The earliest future instant among ``terms`` (NULL: nothing will change by itself)."""
    if not terms:
        return "NULL::timestamptz"
    future = [f"CASE WHEN {t} > {NOW} THEN {t} END" for t in sorted(terms)]
    return f"LEAST({', '.join(future)})"
