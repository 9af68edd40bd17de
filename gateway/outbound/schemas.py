from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.outbound.policy import valid_pattern

_TYPES_EXAMPLE: list[Any] = ["rapport.order.*", "rapport.customer.created.v1"]


def _check_patterns(patterns: list[str]) -> list[str]:
    bad = [p for p in patterns if not valid_pattern(p)]
    if bad:
        raise ValueError(
            f"not an event type or pattern: {bad[0]!r} (use e.g. rapport.order.placed.v1,"
            " rapport.order.* or *)"
        )
    return list(dict.fromkeys(patterns))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://erp.example.com/rapport/webhooks",
                    "event_types": _TYPES_EXAMPLE,
                    "description": "ERP order sync",
                }
            ]
        },
    )

    url: str = Field(max_length=2000, description="http(s) URL; public addresses only.")
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Event types (see `/asyncapi.json`) or patterns ending in `*`.",
        examples=[_TYPES_EXAMPLE],
    )
    description: str | None = Field(default=None, max_length=500)
    segment_id: UUID | None = Field(
        default=None, description="Only events about customers currently in this segment."
    )
    enabled: bool = True

    _patterns = field_validator("event_types")(_check_patterns)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    segment_id: UUID | None = None
    enabled: bool | None = Field(
        default=None, description="`true` re-enables a disabled endpoint and clears why."
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_patterns(value)


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    owner: str
    url: str
    description: str | None
    event_types: list[str]
    segment_id: UUID | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why the endpoint was disabled.")
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts (none since a success)."
    )
    created_at: datetime


class SecretIssued(BaseModel):
    secret: str = Field(
        description="The `whsec_…` signing secret. Shown only now: store it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    previous_secrets_expire_at: datetime | None = Field(
        default=None, description="Until then messages carry a signature by each secret."
    )


class EndpointCreated(EndpointRead):
    secret: SecretIssued


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_s: int = Field(
        default=86_400, ge=0, le=7 * 86_400, description="How long the old secrets still sign."
    )


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Send again every message created since then.")


class ReplayQueued(BaseModel):
    queued: int = Field(description="Messages queued for delivery again.")


AttemptOutcome = Literal["succeeded", "failed", "gone", "timeout", "refused"]


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: UUID
    message_id: str = Field(description="The `webhook-id` header, stable across retries.")
    event_type: str
    attempted_at: datetime
    outcome: AttemptOutcome
    status_code: int | None
    latency_ms: float
    response_excerpt: str | None = Field(description="The start of the response body.")
    error: str | None


DeliveryStatus = Literal["pending", "delivering", "succeeded", "failed", "cancelled"]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    endpoint_id: UUID
    message_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    created_at: datetime
    finished_at: datetime | None
