from datetime import datetime
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.interactions.interaction.schemas import Channel
from services.interactions.models import Ticket, TicketComment
from shared.auth import Principal
from shared.privacy import PII_SCOPE

Category = Literal["complaint", "question", "request", "incident"]
Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "pending", "resolved", "closed"]

WITHHELD = "[withheld: needs customers:pii]"


class TicketCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "title": "Parcel arrived damaged",
                    "description": "The box was crushed; the vase inside is broken.",
                    "category": "complaint",
                    "priority": "high",
                    "channel": "email",
                    "order_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                }
            ]
        },
    )

    customer_id: UUID
    title: str = Field(min_length=1, max_length=200, description="A one-line subject.")
    description: str | None = Field(default=None, max_length=20_000)
    category: Category
    priority: Priority = "normal"
    channel: Channel | None = Field(
        default=None, description="Where it came in (the same channels as interactions)."
    )
    order_id: UUID | None = None


class TicketPatch(BaseModel):
    """Reprioritise, recategorise, retitle or (re)assign. Status changes go through
    `POST /tickets/{id}:transition`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"priority": "urgent", "assignee_id": "agent-7", "team_id": "support-eu"}]
        },
    )

    title: str | None = Field(default=None, min_length=1, max_length=200)
    category: Category | None = None
    priority: Priority | None = None
    assignee_id: str | None = Field(default=None, min_length=1, max_length=200)
    team_id: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _not_null(self) -> "TicketPatch":
        for name in ("title", "category", "priority"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TicketTransition(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"to": "resolved"}]})

    to: Status = Field(description="The status to move to.")


class TicketRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    order_id: UUID | None
    title: str
    description: str | None
    category: str
    priority: str
    channel: str | None
    status: str
    assignee_id: str | None
    team_id: str | None
    opened_at: datetime
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    first_response_breached_at: datetime | None
    resolution_breached_at: datetime | None
    version: int

    @classmethod
    def for_principal(cls, ticket: Ticket, principal: Principal) -> "TicketRead":
        """The description is the customer's own words (often personal data): withheld
        without `customers:pii`."""
        read = cls.model_validate(ticket)
        if read.description is not None and not principal.has(PII_SCOPE):
            read.description = WITHHELD
        return read


class CommentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"body": "Sorry about that - a replacement is on its way.", "public": True}
            ]
        },
    )

    body: str = Field(min_length=1, max_length=20_000)
    public: bool = Field(
        default=True, description="Visible to the customer; false = an internal note."
    )
    author_kind: Literal["agent", "customer"] = Field(
        default="agent", description="Who wrote it; the author id is the caller."
    )


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    ticket_id: UUID
    author_id: str
    author_kind: str
    body: str
    public: bool
    created_at: datetime

    @classmethod
    def for_principal(cls, comment: TicketComment, principal: Principal) -> "CommentRead":
        read = cls.model_validate(comment)
        if not principal.has(PII_SCOPE):
            read.body = WITHHELD
        return read


class SlaPolicyWrite(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "first_response_minutes": 240,
                    "resolution_minutes": 1440,
                    "business_days": [1, 2, 3, 4, 5],
                    "business_start_hour": 9,
                    "business_end_hour": 17,
                    "timezone": "Europe/Berlin",
                }
            ]
        },
    )

    first_response_minutes: int = Field(gt=0, le=525_600)
    resolution_minutes: int = Field(gt=0, le=525_600)
    business_days: list[int] | None = Field(
        default=None, description="ISO weekdays (1 = Monday); null = around the clock."
    )
    business_start_hour: int | None = Field(default=None, ge=0, le=23)
    business_end_hour: int | None = Field(default=None, ge=1, le=24)
    timezone: str = Field(default="UTC", max_length=64)

    @model_validator(mode="after")
    def _consistent(self) -> "SlaPolicyWrite":
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        if self.business_days is not None:
            if not self.business_days or any(d < 1 or d > 7 for d in self.business_days):
                raise ValueError("business_days are ISO weekdays 1..7")
            if self.business_start_hour is None or self.business_end_hour is None:
                raise ValueError("business hours need business_start_hour and business_end_hour")
            if self.business_start_hour >= self.business_end_hour:
                raise ValueError("business_start_hour must be before business_end_hour")
        elif self.business_start_hour is not None or self.business_end_hour is not None:
            raise ValueError("business hours need business_days")
        return self


class SlaPolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    priority: str
    first_response_minutes: int
    resolution_minutes: int
    business_days: list[int] | None
    business_start_hour: int | None
    business_end_hour: int | None
    timezone: str


class TicketStatsRow(BaseModel):
    key: str | None = Field(description="The agent or team id (null = unassigned).")
    tickets: int
    first_response_breached: int
    resolution_breached: int
    first_response_breach_rate: float
    resolution_breach_rate: float
    first_response_minutes_median: float | None
    first_response_minutes_avg: float | None
    resolution_minutes_median: float | None
    resolution_minutes_avg: float | None


class TicketStats(BaseModel):
    group_by: Literal["agent", "team"]
    since: AwareDatetime | None
    until: AwareDatetime | None
    groups: list[TicketStatsRow]
