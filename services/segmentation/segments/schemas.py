from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

SegmentKind = Literal["dynamic", "static"]

RULE_DESCRIPTION = (
    'The rule of a dynamic segment (JSON). Nodes: `{"all": [...]}`, `{"any": [...]}`, '
    '`{"not": node}`; conditions `{"field", "op", "value"}` on the customer\'s features '
    "(`GET /customers/{id}/features` shows them) with `eq ne gt gte lt lte in not_in contains "
    "exists between`; on timestamps `before`/`after`/`between` (dates or date-times) and "
    '`within_last`/`older_than` with `days`; behaviour: `{"performed": "order_placed", '
    '"where": [conditions on the event], "at_least" | "at_most": N, "within_days": D}`; '
    '`{"member_of": "<segment id>"}`. A condition on a missing value is false. A bad node '
    "is answered 422 with a JSON pointer to it in `errors`."
)

#: Examples shown in the OpenAPI document.
RULE_EXAMPLES: dict[str, Any] = {
    "high_value_recent": {
        "summary": "Spent ≥ 500 EUR, ordered in the last 90 days, consented to e-mail",
        "value": {
            "all": [
                {"field": "total_spent.EUR", "op": "gte", "value": "500"},
                {"field": "last_order_at", "op": "within_last", "days": 90},
                {"field": "email_consent", "op": "eq", "value": True},
            ]
        },
    },
    "web_repeaters": {
        "summary": "At least 2 web orders in 30 days, not tagged 'staff'",
        "value": {
            "all": [
                {
                    "performed": "order_placed",
                    "where": [{"field": "channel", "op": "eq", "value": "web"}],
                    "at_least": 2,
                    "within_days": 30,
                },
                {"not": {"field": "tags", "op": "contains", "value": "staff"}},
            ]
        },
    },
    "lapsed_or_unhappy": {
        "summary": "No order for 180 days, or an open ticket and a CSAT of 2 or less",
        "value": {
            "any": [
                {"field": "last_order_at", "op": "older_than", "days": 180},
                {
                    "all": [
                        {"field": "open_tickets", "op": "gt", "value": 0},
                        {"field": "last_csat", "op": "lte", "value": 2},
                    ]
                },
            ]
        },
    },
}


class SegmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "High-value, recent, reachable",
                    "kind": "dynamic",
                    "rule": RULE_EXAMPLES["high_value_recent"]["value"],
                },
                {
                    "name": "Trade-fair leads 2026",
                    "kind": "static",
                    "customer_ids": ["0f8fad5b-d9cb-469f-a165-70867728950e"],
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    kind: SegmentKind = "dynamic"
    rule: dict[str, Any] | None = Field(default=None, description=RULE_DESCRIPTION)
    customer_ids: list[UUID] = Field(
        default_factory=list,
        max_length=10_000,
        description="The first members of a static segment (up to 10,000; add more later).",
    )

    @model_validator(mode="after")
    def _rule_matches_kind(self) -> "SegmentCreate":
        if self.kind == "dynamic" and self.rule is None:
            raise ValueError("a dynamic segment needs a rule")
        if self.kind == "static" and self.rule is not None:
            raise ValueError("a static segment has no rule (its members are a list)")
        if self.kind == "dynamic" and self.customer_ids:
            raise ValueError("a dynamic segment's members follow its rule: no customer_ids")
        return self


class SegmentPatch(BaseModel):
    """Rename, describe, or (dynamic segments) replace the rule: a new rule is a new version,
    and the membership is recomputed before the answer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rule": RULE_EXAMPLES["web_repeaters"]["value"]}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    rule: dict[str, Any] | None = Field(default=None, description=RULE_DESCRIPTION)


class SegmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    description: str | None
    kind: SegmentKind
    rule: dict[str, Any] | None
    version: int = Field(description="Grows with every rule change; memberships record it.")
    time_relative: bool = Field(
        description="Time alone can change the answer (re-checked by the scheduler)."
    )
    member_count: int | None = Field(default=None, description="Set on single reads.")
    created_at: datetime
    updated_at: datetime
    recomputed_at: datetime | None


class RecomputeResult(BaseModel):
    segment_id: UUID
    version: int
    entered: int
    exited: int


class SegmentWritten(SegmentRead):
    recomputed: list[RecomputeResult] = Field(
        default_factory=list,
        description="What the write changed: this segment and those that include it "
        "through member_of, with how many customers entered and left.",
    )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rule": RULE_EXAMPLES["high_value_recent"]["value"], "sample_size": 5}]
        },
    )

    rule: dict[str, Any] = Field(description=RULE_DESCRIPTION)
    sample_size: int = Field(default=10, ge=0, le=100)


class PreviewResult(BaseModel):
    count: int = Field(description="Customers the rule selects now (within your data scope).")
    sample: list[UUID] = Field(description="Some of them, in id order.")


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    customer_id: UUID
    version: int
    entered_at: datetime


class MembersChange(BaseModel):
    """Hand-pick or upload the members of a static segment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "add": ["0f8fad5b-d9cb-469f-a165-70867728950e"],
                    "remove": ["7c9e6679-7425-40de-944b-e07fc1f90ae7"],
                }
            ]
        },
    )

    add: list[UUID] = Field(default_factory=list, max_length=10_000)
    remove: list[UUID] = Field(default_factory=list, max_length=10_000)


class MembersChanged(BaseModel):
    added: int
    removed: int


class CustomerSegment(BaseModel):
    segment_id: UUID
    name: str
    kind: SegmentKind
    version: int
    entered_at: datetime
