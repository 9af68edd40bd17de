"""Care-plan rules as the API takes them: one model per rule type, told apart by ``type``.

An unknown ``type``, a period or delay of 0 or less, an impossible holiday date (``02-30``),
a fixed assignment without an assignee… each is a 422 pointing at the field."""

import re
from datetime import date, datetime, time
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

#: A time of day without an offset: JSON Schema's ``format: time`` (RFC 3339) demands one.
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
            "examples": ["09:00"],
        }
    ),
]

RuleType = Literal["birthday", "holiday", "periodic_revisit", "post_purchase", "low_csat"]

DEFAULT_TITLES: dict[str, str] = {
    "birthday": "Birthday greeting",
    "holiday": "Holiday greeting",
    "periodic_revisit": "Periodic revisit",
    "post_purchase": "Post-purchase follow-up",
    "low_csat": "Check in after a low satisfaction score",
}

_MONTH_DAY = re.compile(r"^\d{2}-\d{2}$")
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    active: bool = True
    action: Literal["task", "event"] = Field(
        default="task",
        description="`task`: create a follow-up task; `event`: only publish "
        "`rapport.interaction.care_plan_triggered.v1` (e.g. for marketing automation).",
    )
    assign_to: Literal["owner", "fixed"] = Field(
        default="owner",
        description="`owner`: the customer's owner (else `assignee_id`, else unassigned); "
        "`fixed`: always `assignee_id`.",
    )
    assignee_id: str | None = Field(default=None, min_length=1, max_length=200)
    task_title: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: by rule type."
    )
    due_time: LocalTime = Field(
        default=time(9, 0),
        description="Local time of day (the customer's timezone, UTC when unknown) the task "
        "falls due on the occasion's date.",
    )
    segment_id: UUID | None = Field(
        default=None, description="Only customers in this segment (from segmentation's events)."
    )
    lifecycle_stage: str | None = Field(
        default=None, min_length=1, max_length=30, description="Only customers in this stage."
    )

    @field_validator("due_time")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time of day, without an offset (e.g. 09:00)")
        return value

    @model_validator(mode="after")
    def _assignee(self) -> "_RuleBase":
        if self.assign_to == "fixed" and self.assignee_id is None:
            raise ValueError("assign_to 'fixed' needs assignee_id")
        return self


class BirthdayRule(_RuleBase):
    """On each customer's birthday (29 February: the 28th in other years)."""

    type: Literal["birthday"]


class HolidayRule(_RuleBase):
    """On fixed dates: `MM-DD` every year, `YYYY-MM-DD` once."""

    type: Literal["holiday"]
    dates: list[str] = Field(min_length=1, max_length=50, examples=[["12-25", "2027-02-06"]])

    @field_validator("dates")
    @classmethod
    def _valid_dates(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                if _MONTH_DAY.match(value):
                    date.fromisoformat(f"2000-{value}")  # a leap year: 02-29 is allowed
                elif _FULL_DATE.match(value):
                    if not 2000 <= date.fromisoformat(value).year < 2100:
                        raise ValueError
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a date: use MM-DD (every year) or YYYY-MM-DD"
                ) from None
        return sorted(set(values))


class PeriodicRevisitRule(_RuleBase):
    """Every `every_days` days for the customers of a segment or lifecycle stage, counted
    from when they entered it (or from the rule's creation, if later)."""

    type: Literal["periodic_revisit"]
    every_days: int = Field(gt=0, le=3650)

    @model_validator(mode="after")
    def _audience(self) -> "PeriodicRevisitRule":
        if self.segment_id is None and self.lifecycle_stage is None:
            raise ValueError("a periodic revisit needs segment_id or lifecycle_stage")
        return self


class PostPurchaseRule(_RuleBase):
    """`days_after` days after each order (several orders on one day: one follow-up)."""

    type: Literal["post_purchase"]
    days_after: int = Field(gt=0, le=3650)


class LowCsatRule(_RuleBase):
    """`days_after` days (0 = the same day) after a CSAT answer of `csat_threshold` or less."""

    type: Literal["low_csat"]
    csat_threshold: int = Field(default=2, ge=1, le=4)
    days_after: int = Field(default=0, ge=0, le=365)


RuleWrite = Annotated[
    BirthdayRule | HolidayRule | PeriodicRevisitRule | PostPurchaseRule | LowCsatRule,
    Field(discriminator="type"),
]

RULE_EXAMPLES = {
    "birthday": {
        "summary": "Birthday greeting by the owner",
        "value": {"name": "Birthday call", "type": "birthday", "due_time": "10:00"},
    },
    "holiday": {
        "summary": "Holiday greetings (event only)",
        "value": {
            "name": "Season's greetings",
            "type": "holiday",
            "dates": ["12-24", "2027-02-06"],
            "action": "event",
        },
    },
    "periodic_revisit": {
        "summary": "Visit VIPs every 30 days",
        "value": {
            "name": "VIP revisit",
            "type": "periodic_revisit",
            "every_days": 30,
            "segment_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        },
    },
    "post_purchase": {
        "summary": "Follow up 7 days after an order",
        "value": {"name": "How is it going?", "type": "post_purchase", "days_after": 7},
    },
    "low_csat": {
        "summary": "Check in after a CSAT of 2 or less",
        "value": {
            "name": "Unhappy customer",
            "type": "low_csat",
            "csat_threshold": 2,
            "assign_to": "fixed",
            "assignee_id": "team-lead-1",
        },
    },
}


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    type: str
    active: bool
    action: str
    assign_to: str
    assignee_id: str | None
    task_title: str | None
    due_time: LocalTime
    every_days: int | None
    days_after: int | None
    csat_threshold: int | None
    dates: list[str] | None
    segment_id: UUID | None
    lifecycle_stage: str | None
    created_by: str
    created_at: datetime = Field(
        description="Occasions before this date (customer's local calendar) never fire."
    )
    updated_at: datetime
    version: int
