from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.interactions.models import Task
from shared.auth import Principal
from shared.privacy import PII_SCOPE

Status = Literal["open", "done", "cancelled"]
Source = Literal["manual", "care_plan"]

WITHHELD = "[withheld: needs customers:pii]"
#: Due times outside this window are typing mistakes, not plans.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST <= value < LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return value


class TaskCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "title": "Call back about the replacement vase",
                    "notes": "Prefers calls after 5 pm.",
                    "assignee_id": "agent-7",
                    "due_at": "2026-11-30T09:00:00+01:00",
                }
            ]
        },
    )

    customer_id: UUID
    title: str = Field(min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=20_000)
    assignee_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Agent id; null = unassigned."
    )
    due_at: AwareDatetime = Field(description="When it falls due (ISO 8601 with an offset).")

    _due = field_validator("due_at")(_plausible)


class TaskPatch(BaseModel):
    """Retitle, reassign or reschedule an open task. Moving `due_at` re-arms `TaskDue`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"assignee_id": "agent-9", "due_at": "2026-12-01T10:00:00Z"}]
        },
    )

    title: str | None = Field(default=None, min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=20_000)
    assignee_id: str | None = Field(default=None, min_length=1, max_length=200)
    due_at: AwareDatetime | None = None

    _due = field_validator("due_at")(_plausible)

    @model_validator(mode="after")
    def _not_null(self) -> "TaskPatch":
        for name in ("title", "due_at"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    assignee_id: str | None
    title: str
    notes: str | None
    due_at: datetime
    status: str
    source: str
    rule_id: UUID | None = Field(description="The care-plan rule that created it, if any.")
    rule_type: str | None
    occurs_on: date | None = Field(description="The care-plan occasion (customer's local date).")
    created_by: str
    created_at: datetime
    due_notified_at: datetime | None = Field(description="When `TaskDue` was published.")
    completed_at: datetime | None
    completed_by: str | None
    cancelled_at: datetime | None
    version: int

    @classmethod
    def for_principal(cls, task: Task, principal: Principal) -> "TaskRead":
        """Notes are free text about the customer: withheld without `customers:pii`."""
        read = cls.model_validate(task)
        if read.notes is not None and not principal.has(PII_SCOPE):
            read.notes = WITHHELD
        return read
