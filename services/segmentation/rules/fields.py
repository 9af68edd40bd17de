"""What a rule may look at: the features (columns of ``customer_features``) and the
attributes of the events in the per-customer event log.

Each field has one type; the type decides which operators apply and what a value must look
like, so "a date compared with a number" is refused when the rule is saved, not when it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["EVENT_TYPES", "FEATURES", "OPERATORS", "FieldSpec", "FieldType", "feature"]

FieldType = Literal["int", "decimal", "string", "bool", "timestamp", "string_list"]

#: Operators by field type. ``exists`` is true when the value is present (not null; a
#: non-empty list; a map that has the key).
OPERATORS: dict[FieldType, frozenset[str]] = {
    "int": frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "exists"}),
    "decimal": frozenset(
        {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "exists"}
    ),
    "string": frozenset({"eq", "ne", "in", "not_in", "contains", "exists"}),
    "bool": frozenset({"eq", "ne", "exists"}),
    "timestamp": frozenset({"before", "after", "between", "within_last", "older_than", "exists"}),
    "string_list": frozenset({"contains", "in", "exists"}),
}
ALL_OPERATORS = frozenset().union(*OPERATORS.values())


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """``sql`` is the column (or, for a map, the JSONB column) on the alias ``f`` / ``e``."""

    name: str
    type: FieldType
    column: str
    #: A map (``total_spent.EUR``): the part after the dot is a key of the JSONB column.
    map_key: re.Pattern[str] | None = None
    #: A rolling-window count, changed by time alone (re-evaluated by the scheduler).
    windowed: bool = False
    description: str = ""


_CURRENCY = re.compile(r"^[A-Z]{3}$")
_WORD = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _f(name: str, type_: FieldType, description: str, **kw: object) -> FieldSpec:
    return FieldSpec(name, type_, str(kw.pop("column", name)), description=description, **kw)  # type: ignore[arg-type]


FEATURES: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        _f("kind", "string", "`person` or `company`"),
        _f("display_name", "string", "the profile's display name"),
        _f("owner_id", "string", "the account owner"),
        _f("team_id", "string", "the owning team"),
        _f("tags", "string_list", "the profile's tags"),
        _f("lifecycle_stage", "string", "lifecycle stage as set on the profile"),
        _f("locale", "string", "e.g. `de-CH`"),
        _f("acquisition_source", "string", "where the customer came from"),
        _f("acquisition_channel", "string", "how the customer came"),
        _f("email_consent", "bool", "marketing consent by e-mail (absent: never asked)"),
        _f("sms_consent", "bool", "marketing consent by SMS"),
        _f("phone_consent", "bool", "marketing consent by phone"),
        _f("customer_created_at", "timestamp", "when the profile was created"),
        _f("order_count", "int", "orders placed, less those cancelled or fully refunded"),
        _f(
            "total_spent",
            "decimal",
            "sum of those orders' totals in one currency: `total_spent.EUR` (0 when none)",
            map_key=_CURRENCY,
        ),
        _f("first_order_at", "timestamp", "the first of those orders' time"),
        _f("last_order_at", "timestamp", "the latest of those orders' time"),
        _f("orders_30d", "int", "orders placed in the last 30 days (any status)", windowed=True),
        _f("orders_90d", "int", "orders placed in the last 90 days (any status)", windowed=True),
        _f("orders_365d", "int", "orders placed in the last 365 days (any status)", windowed=True),
        _f("interaction_count", "int", "interactions ever recorded"),
        _f("last_interaction_at", "timestamp", "the latest interaction's time"),
        _f(
            "interactions_by_channel",
            "int",
            "interactions on one channel: `interactions_by_channel.email` (0 when none)",
            map_key=_WORD,
        ),
        _f(
            "interactions_by_kind",
            "int",
            "interactions of one kind: `interactions_by_kind.call` (0 when none)",
            map_key=_WORD,
        ),
        _f("ticket_count", "int", "support tickets ever opened"),
        _f("open_tickets", "int", "tickets open or pending now"),
        _f("last_csat", "int", "the latest CSAT answer (1-5)"),
        _f("last_csat_at", "timestamp", "when it was given"),
        _f("last_nps", "int", "the latest NPS answer (0-10)"),
        _f("last_nps_at", "timestamp", "when it was given"),
        _f("loyalty_tier", "string", "`silver`, `gold` or `platinum` (absent: no tier)"),
        _f("loyalty_tier_at", "timestamp", "when the loyalty tier last changed"),
    )
}


def feature(path: str) -> tuple[FieldSpec, str | None] | None:
    """``total_spent.EUR`` → (spec, "EUR"); ``order_count`` → (spec, None); unknown → None."""
    name, dot, key = path.partition(".")
    spec = FEATURES.get(name)
    if spec is None:
        return None
    if spec.map_key is None:
        return (spec, None) if not dot else None
    if not dot or not spec.map_key.match(key):
        return None
    return spec, key


def _attrs(**types: FieldType) -> dict[str, FieldSpec]:
    return {name: FieldSpec(name, t, name) for name, t in types.items()}


#: Event types kept in the per-customer log, with the attributes a rule may filter on.
EVENT_TYPES: dict[str, dict[str, FieldSpec]] = {
    "order_placed": _attrs(
        total="decimal", currency="string", channel="string", source="string", skus="string_list"
    ),
    "order_status_changed": _attrs(status="string", previous_status="string"),
    "interaction": _attrs(channel="string", kind="string", direction="string"),
    "ticket_opened": _attrs(category="string", priority="string"),
    "ticket_status_changed": _attrs(status="string", previous_status="string"),
    "survey_answered": _attrs(survey="string", score="int"),
    "loyalty_tier_changed": _attrs(tier="string", previous_tier="string", direction="string"),
}
