"""Rule DSL: JSON in, a validated node tree (or every problem with a JSON pointer) out.

Grammar (a node is one JSON object)::

    {"all": [node, …]}      every child holds          (1-50 children)
    {"any": [node, …]}      at least one child holds
    {"not": node}
    {"field": "order_count", "op": "gte", "value": 3}
    {"field": "total_spent.EUR", "op": "between", "value": ["100", "500"]}
    {"field": "tags", "op": "contains", "value": "vip"}
    {"field": "email_consent", "op": "exists"}
    {"field": "last_order_at", "op": "within_last", "days": 90}
    {"field": "last_order_at", "op": "older_than", "days": 180}
    {"field": "customer_created_at", "op": "before", "value": "2026-01-01"}
    {"performed": "order_placed", "where": [{"field": "channel", "op": "eq", "value": "web"}],
     "at_least": 2, "within_days": 30}
    {"member_of": "<segment id>"}

Semantics: a condition on a missing value is false (so ``{"not": …}`` of it is true); dates
(``2026-01-01``) mean the whole UTC day: ``before`` it is earlier than its first instant,
``after`` it is from the next day on, ``between`` includes both days. ``within_last N``
means during the last N days up to now; ``older_than N`` means more than N days ago.

Limits keep a rule cheap to check and to run: depth 8, 200 nodes, 50 children per group,
1,000 values per list; with every ``member_of`` expanded, 1,000 nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeGuard
from uuid import UUID

from services.segmentation.models import MAX_WINDOW_DAYS
from services.segmentation.rules.fields import (
    ALL_OPERATORS,
    EVENT_TYPES,
    OPERATORS,
    FieldSpec,
    feature,
)
from services.segmentation.rules.nodes import (
    Condition,
    Group,
    MemberOf,
    Node,
    Not,
    Performed,
    Range,
    Scalar,
)

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_NODES", "MAX_NODES", "RuleError", "count_nodes", "parse"]

MAX_DEPTH = 8
MAX_NODES = 200
MAX_CHILDREN = 50
MAX_LIST = 1_000
MAX_STRING = 500
MAX_DAYS = 3_650
MAX_COUNT = 10_000
MAX_EXPANDED_NODES = 1_000

RuleError = dict[str, str]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Parser:
    def __init__(self) -> None:
        self.errors: list[RuleError] = []
        self.nodes = 0
        self.too_large = False

    def error(self, pointer: str, code: str, detail: str) -> None:
        self.errors.append({"pointer": pointer, "detail": detail, "code": code})

    def node(self, raw: Any, at: str, depth: int) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if not self.too_large:
                self.too_large = True
                self.error(at, "rule-too-large", f"a rule may have at most {MAX_NODES} nodes")
            return None
        if depth > MAX_DEPTH:
            self.error(at, "rule-too-deep", f"a rule may nest at most {MAX_DEPTH} levels")
            return None
        if not isinstance(raw, dict):
            self.error(at, "not-an-object", f"a rule node is a JSON object, not {_kind(raw)}")
            return None
        for head in ("all", "any", "not", "field", "performed", "member_of"):
            if head in raw:
                break
        else:
            self.error(
                at,
                "unknown-node",
                "a node needs one of all, any, not, field, performed, member_of"
                + (f" (got {', '.join(sorted(map(str, raw)))})" if raw else ""),
            )
            return None
        handler: Callable[[dict[str, Any], str, int], Node | None] = {
            "all": self.group,
            "any": self.group,
            "not": self.negation,
            "field": self.feature_condition,
            "performed": self.performed,
            "member_of": self.member_of,
        }[head]
        return handler(raw, at, depth)

    def only(self, raw: Mapping[str, Any], at: str, allowed: set[str]) -> bool:
        extra = [k for k in raw if k not in allowed]
        for key in extra:
            self.error(
                f"{at}/{_escape(str(key))}",
                "unknown-key",
                f"unexpected key {key!r} here (allowed: {', '.join(sorted(allowed))})",
            )
        return not extra

    def group(self, raw: dict[str, Any], at: str, depth: int) -> Node | None:
        op: Literal["all", "any"] = "all" if "all" in raw else "any"
        ok = self.only(raw, at, {op})
        children = raw[op]
        here = f"{at}/{op}"
        if not isinstance(children, list) or not children:
            self.error(here, "not-a-list", f"{op!r} takes a non-empty list of nodes")
            return None
        if len(children) > MAX_CHILDREN:
            self.error(here, "rule-too-large", f"{op!r} takes at most {MAX_CHILDREN} nodes")
            return None
        parsed = [self.node(c, f"{here}/{i}", depth + 1) for i, c in enumerate(children)]
        if not ok or any(p is None for p in parsed):
            return None
        return Group(op, tuple(p for p in parsed if p is not None))

    def negation(self, raw: dict[str, Any], at: str, depth: int) -> Node | None:
        ok = self.only(raw, at, {"not"})
        child = self.node(raw["not"], f"{at}/not", depth + 1)
        return Not(child) if ok and child is not None else None

    def member_of(self, raw: dict[str, Any], at: str, depth: int) -> Node | None:
        ok = self.only(raw, at, {"member_of"})
        value = raw["member_of"]
        try:
            segment_id = UUID(value) if isinstance(value, str) else None
        except ValueError:
            segment_id = None
        if segment_id is None:
            self.error(f"{at}/member_of", "type-mismatch", "member_of takes a segment id (UUID)")
            return None
        return MemberOf(segment_id) if ok else None

    def feature_condition(self, raw: dict[str, Any], at: str, depth: int) -> Node | None:
        path = raw["field"]
        if not isinstance(path, str):
            self.error(f"{at}/field", "type-mismatch", "field is a string")
            return None
        found = feature(path)
        if found is None:
            self.error(f"{at}/field", "unknown-field", _unknown_field(path))
            return None
        spec, key = found
        return self.condition(raw, at, spec, key, time_ops=True)

    def condition(
        self, raw: dict[str, Any], at: str, spec: FieldSpec, key: str | None, *, time_ops: bool
    ) -> Condition | None:
        op = raw.get("op")
        if not isinstance(op, str) or op not in ALL_OPERATORS:
            self.error(
                f"{at}/op", "unknown-operator", f"unknown operator {op!r}" if op else "op missing"
            )
            return None
        allowed = OPERATORS[spec.type]
        if op not in allowed:
            self.error(
                f"{at}/op",
                "type-mismatch",
                f"{op!r} does not apply to {spec.name!r} ({_type_name(spec.type)}); "
                f"use one of {', '.join(sorted(allowed))}",
            )
            return None
        if op in ("within_last", "older_than"):
            if not self.only(raw, at, {"field", "op", "days"}):
                return None
            days = raw.get("days")
            if not _is_int(days) or not 1 <= days <= MAX_DAYS:
                self.error(f"{at}/days", "invalid-value", f"days is a whole number 1-{MAX_DAYS}")
                return None
            return Condition(spec, key, op, int(days))
        if op == "exists":
            return Condition(spec, key, op, None) if self.only(raw, at, {"field", "op"}) else None
        if not self.only(raw, at, {"field", "op", "value"}):
            return None
        if "value" not in raw:
            self.error(at, "missing-value", f"{op!r} needs a value")
            return None
        value = raw["value"]
        here = f"{at}/value"
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                self.error(here, "type-mismatch", f"{op!r} takes a list of 1-{MAX_LIST} values")
                return None
            element = "string" if spec.type == "string_list" else spec.type
            items = [self.scalar(v, f"{here}/{i}", element) for i, v in enumerate(value)]
            if any(i is None for i in items):
                return None
            return Condition(spec, key, op, tuple(i for i in items if i is not None))
        if spec.type == "timestamp":
            return self.time_range(op, value, here, spec, key)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.error(here, "type-mismatch", "between takes [low, high]")
                return None
            lo = self.scalar(value[0], f"{here}/0", spec.type)
            hi = self.scalar(value[1], f"{here}/1", spec.type)
            if lo is None or hi is None:
                return None
            if lo > hi:  # type: ignore[operator]
                self.error(here, "invalid-value", "between needs low ≤ high")
                return None
            return Condition(spec, key, op, (lo, hi))
        element = "string" if spec.type == "string_list" else spec.type
        scalar = self.scalar(value, here, element)
        return Condition(spec, key, op, scalar) if scalar is not None else None

    def time_range(
        self, op: str, value: Any, at: str, spec: FieldSpec, key: str | None
    ) -> Condition | None:
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.error(at, "type-mismatch", "between takes [from, to] (dates or date-times)")
                return None
            lo = self.instant(value[0], f"{at}/0")
            hi = self.instant(value[1], f"{at}/1")
            if lo is None or hi is None:
                return None
            start, end = lo[0], hi[1]
            if start > end:
                self.error(at, "invalid-value", "between needs from ≤ to")
                return None
            return Condition(spec, key, "range", Range(start, True, end, hi[2]))
        parsed = self.instant(value, at)
        if parsed is None:
            return None
        start, end, end_inclusive = parsed
        if op == "before":
            return Condition(spec, key, "range", Range(None, False, start, False))
        # after: a date means from the next day on; a date-time, strictly later
        return Condition(spec, key, "range", Range(end, not end_inclusive, None, False))

    def instant(self, value: Any, at: str) -> tuple[datetime, datetime, bool] | None:
        """``(first instant, end, end inclusive)``: a date spans its UTC day."""
        if isinstance(value, str):
            try:
                if len(value) == 10:
                    day = date.fromisoformat(value)
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    return start, start + timedelta(days=1), False
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return moment, moment, True
            except ValueError:
                pass
        self.error(
            at,
            "type-mismatch",
            f"expected a date (2026-01-31) or date-time (2026-01-31T09:00:00Z), got {_kind(value)}",
        )
        return None

    def scalar(self, value: Any, at: str, type_: str) -> Scalar | None:
        if type_ in ("int", "decimal"):
            number = _number(value)
            if number is None:
                self.error(at, "type-mismatch", f"expected a number, got {_kind(value)}")
            return number
        if type_ == "bool":
            if isinstance(value, bool):
                return value
            self.error(at, "type-mismatch", f"expected true or false, got {_kind(value)}")
            return None
        if isinstance(value, str) and len(value) <= MAX_STRING and "\x00" not in value:
            return value
        self.error(
            at,
            "type-mismatch",
            f"expected a string of at most {MAX_STRING} characters, got " + _kind(value),
        )
        return None

    def performed(self, raw: dict[str, Any], at: str, depth: int) -> Node | None:
        ok = self.only(raw, at, {"performed", "where", "at_least", "at_most", "within_days"})
        event = raw["performed"]
        attrs = EVENT_TYPES.get(event) if isinstance(event, str) else None
        if attrs is None:
            self.error(
                f"{at}/performed",
                "unknown-event",
                f"unknown event {event!r}; known: {', '.join(sorted(EVENT_TYPES))}",
            )
            return None
        where: list[Condition] = []
        raw_where = raw.get("where", [])
        if not isinstance(raw_where, list) or len(raw_where) > 20:
            self.error(f"{at}/where", "not-a-list", "where takes a list of up to 20 conditions")
            ok = False
            raw_where = []
        for i, item in enumerate(raw_where):
            here = f"{at}/where/{i}"
            self.nodes += 1
            if not isinstance(item, dict) or not isinstance(item.get("field"), str):
                self.error(here, "not-a-condition", 'a filter is {"field", "op", "value"}')
                ok = False
                continue
            spec = attrs.get(item["field"])
            if spec is None:
                self.error(
                    f"{here}/field",
                    "unknown-field",
                    f"{event} has no attribute {item['field']!r}; known: "
                    + ", ".join(sorted(attrs)),
                )
                ok = False
                continue
            condition = self.condition(item, here, spec, None, time_ops=False)
            if condition is None:
                ok = False
            else:
                where.append(condition)
        if ("at_least" in raw) == ("at_most" in raw):
            self.error(at, "missing-value", "give exactly one of at_least and at_most")
            return None
        bound = "at_least" if "at_least" in raw else "at_most"
        count = raw[bound]
        if not _is_int(count) or not 0 <= count <= MAX_COUNT:
            self.error(f"{at}/{bound}", "invalid-value", f"{bound} is a whole number 0-{MAX_COUNT}")
            return None
        days = raw.get("within_days")
        if not _is_int(days) or not 1 <= days <= MAX_WINDOW_DAYS:
            self.error(
                f"{at}/within_days",
                "invalid-value",
                f"within_days is a whole number 1-{MAX_WINDOW_DAYS} (the event log keeps a year)",
            )
            return None
        if not ok:
            return None
        return Performed(event, tuple(where), bound == "at_least", int(count), int(days))


def parse(raw: Any, pointer: str = "/rule") -> tuple[Node | None, list[RuleError]]:
    """The node tree of ``raw``, or ``None`` and every problem found (JSON pointers under
    ``pointer``)."""
    parser = _Parser()
    node = parser.node(raw, pointer, 1)
    if parser.errors:
        return None, parser.errors
    return node, []


def count_nodes(node: Node) -> int:
    if isinstance(node, Group):
        return 1 + sum(count_nodes(c) for c in node.children)
    if isinstance(node, Not):
        return 1 + count_nodes(node.child)
    if isinstance(node, Performed):
        return 1 + len(node.where)
    return 1


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        if number.is_finite() and abs(number) < Decimal("1e15"):
            return number
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _type_name(type_: str) -> str:
    return {"string_list": "a list of strings", "int": "a number", "decimal": "a number"}.get(
        type_, f"a {type_}"
    )


def _unknown_field(path: str) -> str:
    from services.segmentation.rules.fields import FEATURES

    name = path.partition(".")[0]
    spec = FEATURES.get(name)
    if spec is not None and spec.map_key is not None:
        return f"{name!r} is a map: name a key, e.g. {name}.{'EUR' if name == 'total_spent' else 'email'}"
    if spec is not None:
        return f"{name!r} has no keys"
    return f"unknown field {path!r}; known: {', '.join(sorted(FEATURES))}"
