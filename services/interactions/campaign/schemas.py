"""Campaigns as the API takes and returns them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.interactions.careplan.schemas import RuleType
from services.interactions.models.campaign import SKIP_REASONS

CampaignChannel = Literal["email", "sms", "webhook"]
CampaignStatus = Literal["draft", "scheduled", "sending", "completed", "cancelled"]
CampaignTrigger = Literal["segment_entered", "order_placed", "task_due"]


class Recurrence(BaseModel):
    """Run again every `every_days` days from `scheduled_at` (the first run)."""

    model_config = ConfigDict(extra="forbid")

    every_days: int = Field(ge=1, le=366, description="Days between runs.", examples=[7])
    until: AwareDatetime | None = Field(
        default=None,
        description="No run after this time (null: until cancelled).",
        examples=["2027-06-30T23:59:59Z"],
    )


#: Most customers of a static audience (larger audiences are segments).
MAX_LISTED = 10_000


class CampaignWrite(BaseModel):
    """A campaign to create, or the whole of one to replace (while draft or scheduled)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    channel: CampaignChannel
    segment_id: UUID | None = Field(
        default=None, description="Audience: the members of this segment when it starts."
    )
    customer_ids: list[UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LISTED,
        description="Audience: exactly these customers (instead of `segment_id`).",
    )
    subject: str | None = Field(
        default=None,
        max_length=1000,
        description="Subject template (e-mail; required there). Jinja2, see the body.",
    )
    body: str = Field(
        min_length=1,
        max_length=100_000,
        description="Body template, Jinja2 in a sandbox: `{{ customer.first_name | "
        'default("friend") }}`. Fields: `customer.id`, `display_name`, `first_name`, '
        "`email`, `phone`, `locale`, `timezone`, `lifecycle_stage`, `tags`, "
        "`custom_fields.<name>`; `campaign.id`, `campaign.name`. A value the customer "
        "lacks renders empty. Unknown fields and syntax errors are refused with their line "
        "and column.",
    )
    scheduled_at: AwareDatetime | None = Field(
        default=None,
        description="Start at this time (`:start` schedules it); null: `:start` sends now. "
        "The first run of a recurring campaign (required with `recurrence`).",
    )
    recurrence: Recurrence | None = Field(
        default=None,
        description="Run again every `every_days` days (1 to 366) from `scheduled_at`, while "
        "the run time is not after `until`. Each run sends to the audience as it is then "
        "(the segment's members at that time), one message per customer and run; consent, "
        "caps and quiet hours apply each time. Between runs the campaign is `scheduled` "
        "(`scheduled_at` is the next run); after the last it is `completed`. Runs missed "
        "while the service was down are not replayed: the next run is the first one due. "
        "Not with a `trigger`.",
    )
    trigger: CampaignTrigger | None = Field(
        default=None,
        description="Once started, until cancelled: `segment_entered`: every customer who "
        "enters `segment_id` gets the message (once per campaign). `order_placed`: "
        "`delay_days` after each order of an audience member (once per order; e.g. a "
        "review request a week after the purchase). `task_due`: when a care-plan or manual "
        "task of an audience member falls due (once per task; only tasks of `rule_type` "
        "when given). Consent, caps and quiet hours are judged when each message is due. "
        "Null: one send to the audience (or one per run with `recurrence`).",
    )
    delay_days: int | None = Field(
        default=None,
        ge=1,
        le=365,
        description="Days after the order (`placed_at`) an `order_placed` message is due "
        "(required there, refused otherwise).",
    )
    rule_type: RuleType | None = Field(
        default=None,
        description="`task_due` only: act on tasks of care-plan rules of this type only "
        "(null: every task that falls due).",
    )

    @model_validator(mode="after")
    def _one_audience(self) -> CampaignWrite:
        if (self.segment_id is None) == (self.customer_ids is None):
            raise ValueError("give exactly one audience: segment_id or customer_ids")
        if self.trigger == "segment_entered" and self.segment_id is None:
            raise ValueError("a segment_entered trigger needs segment_id")
        if (self.delay_days is not None) != (self.trigger == "order_placed"):
            raise ValueError(
                "delay_days (1..365) is required with an order_placed trigger, and only there"
            )
        if self.rule_type is not None and self.trigger != "task_due":
            raise ValueError("rule_type filters a task_due trigger only")
        if self.recurrence is not None:
            if self.trigger is not None:
                raise ValueError("a campaign is recurring or triggered, not both")
            if self.scheduled_at is None:
                raise ValueError("a recurring campaign needs scheduled_at (its first run)")
            if self.recurrence.until is not None and self.recurrence.until < self.scheduled_at:
                raise ValueError("recurrence.until is before the first run (scheduled_at)")
        if self.channel == "email" and not self.subject:
            raise ValueError("an e-mail campaign needs a subject")
        return self


class CampaignRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    status: CampaignStatus
    channel: CampaignChannel
    segment_id: UUID | None
    customer_ids: list[UUID] | None
    subject: str | None = Field(validation_alias="subject_template")
    body: str = Field(validation_alias="body_template")
    scheduled_at: datetime | None = Field(
        description="When it starts; for a recurring campaign, its next run."
    )
    recurrence: Recurrence | None
    trigger: CampaignTrigger | None
    delay_days: int | None
    rule_type: RuleType | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    version: int


class StartResult(BaseModel):
    campaign: CampaignRead
    audience: int = Field(
        description="Customers in the audience when it started (a recurring campaign: in "
        "this run; a triggered one: 0, its messages come with each trigger)."
    )
    queued: int = Field(description="Messages to send now.")
    deferred: int = Field(description="Messages waiting for the end of quiet hours.")
    skipped: dict[str, int] = Field(
        description="By reason: `no-consent`, `no-address`, `frequency-cap`."
    )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: UUID


class Preview(BaseModel):
    customer_id: UUID
    subject: str
    body: str


class RevenueLine(BaseModel):
    currency: str | None
    orders: int
    revenue: Decimal


class CampaignReport(BaseModel):
    campaign_id: UUID
    status: CampaignStatus
    audience: int = Field(
        description="Messages of the campaign: one per customer (per order, task or run for "
        "triggered and recurring campaigns)."
    )
    skipped: dict[str, int] = Field(
        description="Messages not sent, by reason: `no-consent` (at start, or withdrawn by "
        "the time it was due), `no-address`, `frequency-cap` (at start or when due), "
        "`cancelled` (the campaign was cancelled first), `erased` (the customer was), "
        "`merged` (into a customer who got their own)."
    )
    queued: int
    deferred: int
    sending: int
    sent: int
    failed: int
    unconfirmed: int = Field(
        description="Claimed by a sender that crashed before confirming: possibly delivered, "
        "never resent (at most once)."
    )
    delivered: int
    bounced: int
    opened: int
    clicked: int
    unsubscribed: int
    attribution_days: int
    orders: list[RevenueLine] = Field(
        description="Orders recipients placed within `attribution_days` after their message "
        "was sent, with revenue, per currency."
    )

    @classmethod
    def of(
        cls, campaign_id: UUID, status: str, days: int, figures: dict[str, Any]
    ) -> CampaignReport:
        skipped = {r: figures.pop(r) for r in SKIP_REASONS}
        return cls(
            campaign_id=campaign_id,
            status=status,
            skipped=skipped,
            attribution_days=days,
            **figures,
        )


CAMPAIGN_EXAMPLES: dict[str, Any] = {
    "segment e-mail": {
        "summary": "E-mail to a segment",
        "value": {
            "name": "Win-back November",
            "channel": "email",
            "segment_id": "0b9d4c5e-8f43-4a43-9d64-3c1c8f5d2e11",
            "subject": "{{ customer.first_name | default('Hello') }}, we miss you",
            "body": "Hi {{ customer.first_name | default('there') }},\n\n"
            "Here is 10% off your next order.",
        },
    },
    "listed sms": {
        "summary": "SMS to listed customers, at a time",
        "value": {
            "name": "Store opening",
            "channel": "sms",
            "customer_ids": ["7c1e2f9a-5b1d-4d8e-9f0a-2b3c4d5e6f70"],
            "body": "{{ customer.first_name }}, our new store opens Saturday!",
            "scheduled_at": "2026-12-01T09:00:00Z",
        },
    },
    "weekly newsletter": {
        "summary": "Every 7 days to a segment, until the end of June",
        "value": {
            "name": "Weekly picks",
            "channel": "email",
            "segment_id": "0b9d4c5e-8f43-4a43-9d64-3c1c8f5d2e11",
            "subject": "This week's picks for {{ customer.first_name | default('you') }}",
            "body": "Hi {{ customer.first_name | default('there') }}, here is what is new.",
            "scheduled_at": "2026-12-04T09:00:00Z",
            "recurrence": {"every_days": 7, "until": "2027-06-30T23:59:59Z"},
        },
    },
    "after an order": {
        "summary": "A review request 7 days after each order",
        "value": {
            "name": "How was it?",
            "channel": "email",
            "segment_id": "0b9d4c5e-8f43-4a43-9d64-3c1c8f5d2e11",
            "trigger": "order_placed",
            "delay_days": 7,
            "subject": "How was your order, {{ customer.first_name | default('there') }}?",
            "body": "Tell us what you think: it takes a minute.",
        },
    },
    "on a care-plan task": {
        "summary": "A birthday SMS when the care plan's birthday task falls due",
        "value": {
            "name": "Happy birthday",
            "channel": "sms",
            "customer_ids": ["7c1e2f9a-5b1d-4d8e-9f0a-2b3c4d5e6f70"],
            "trigger": "task_due",
            "rule_type": "birthday",
            "body": "Happy birthday {{ customer.first_name }}! 20% off today.",
        },
    },
}
