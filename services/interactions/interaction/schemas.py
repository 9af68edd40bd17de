from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Channel = Literal["call", "email", "sms", "chat", "social", "meeting", "note", "web", "app"]
Kind = Literal[
    "message",
    "call",
    "meeting",
    "note",
    "visit",
    "page_view",
    "click",
    "search",
    "feedback",
    "complaint",
]
Direction = Literal["inbound", "outbound"]


class InteractionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "channel": "call",
                    "kind": "call",
                    "direction": "inbound",
                    "occurred_at": "2026-11-23T09:30:00+01:00",
                    "summary": "Asked about the delivery date of order 1042.",
                }
            ]
        },
    )

    customer_id: UUID = Field(description="The customer this touchpoint belongs to.")
    channel: Channel = Field(description="Where it happened.")
    kind: Kind = Field(description="What happened.")
    direction: Direction | None = Field(
        default=None, description="Who started it; omit when it has no direction (a note)."
    )
    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="When it happened, with a UTC offset; defaults to the time of the request.",
    )
    summary: str | None = Field(default=None, min_length=1, max_length=4000)


class InteractionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    channel: str
    kind: str
    direction: str | None
    occurred_at: datetime
    summary: str | None
    created_at: datetime
