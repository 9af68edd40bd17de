"""The event contracts between the parts. Past tense, versioned, one model each.

Fields added later must be optional so older consumers keep working; anything incompatible
becomes a new ``.v2`` type published beside the old one until every consumer has moved.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import (
    CUSTOMER_TOPIC,
    INTERACTION_TOPIC,
    ORDER_TOPIC,
    SEGMENT_TOPIC,
    WEBHOOK_STATUS_TOPIC,
    WEBHOOK_TOPIC,
    Event,
)

__all__ = [
    "BehaviourRecorded",
    "CarePlanTriggered",
    "ConsentState",
    "CustomerConsentChanged",
    "CustomerCreated",
    "CustomerErased",
    "CustomerMerged",
    "CustomerScored",
    "CustomerUpdated",
    "DealLost",
    "DealStageChanged",
    "DealWon",
    "InteractionRecorded",
    "LoyaltyTierChanged",
    "OrderCoupon",
    "OrderItem",
    "OrderPlaced",
    "OrderStatusChanged",
    "SegmentEntered",
    "SegmentExited",
    "SurveyAnswered",
    "TaskCompleted",
    "TaskDue",
    "TicketOpened",
    "TicketSlaBreached",
    "TicketStatusChanged",
    "WebhookProcessed",
    "WebhookReceived",
    "webhook_key",
]


# --- customer360 -------------------------------------------------------------------------
class ConsentState(BaseModel):
    """Consent to marketing on one channel: given or withdrawn, when, and where it came from."""

    model_config = ConfigDict(frozen=True)

    granted: bool
    at: datetime
    source: str | None = Field(default=None, examples=["signup-form", "import", "support"])


class CustomerCreated(Event):
    """A customer profile was created (person or company).

    Carries the profile as created (personal data included: topics are internal); consumers
    that keep personal data must honour :class:`CustomerErased`.
    """

    event_type: ClassVar[str] = "rapport.customer.created.v1"
    topic: ClassVar[str] = CUSTOMER_TOPIC

    kind: Literal["person", "company"] = "person"
    display_name: str
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list, description="E.164")
    tags: list[str] = Field(default_factory=list)
    owner_id: str | None = None
    team_id: str | None = None
    created_at: datetime
    company_id: UUID | None = None
    birthday: date | None = None
    gender: str | None = None
    locale: str | None = None
    timezone: str | None = None
    acquisition_source: str | None = None
    acquisition_channel: str | None = None
    lifecycle_stage: str | None = None
    consent: dict[str, ConsentState] = Field(default_factory=dict)
    external_ids: dict[str, str] = Field(default_factory=dict)
    custom_fields: dict[str, object] = Field(default_factory=dict)


class CustomerUpdated(Event):
    """Attributes of a customer changed; ``changes`` holds the new values only.

    Keys are the profile's field names as in :class:`CustomerCreated` (``display_name``,
    ``emails``, ``tags``, ``owner_id``, ``custom_fields`` …); a removed value is ``null``.
    """

    event_type: ClassVar[str] = "rapport.customer.updated.v1"
    topic: ClassVar[str] = CUSTOMER_TOPIC

    changes: dict[str, object]
    updated_at: datetime
    actor: str | None = None


class CustomerConsentChanged(Event):
    """Marketing consent on one channel (``email``, ``sms``, ``phone``) was given or withdrawn."""

    event_type: ClassVar[str] = "rapport.customer.consent_changed.v1"
    topic: ClassVar[str] = CUSTOMER_TOPIC

    channel: Literal["email", "sms", "phone"]
    granted: bool
    changed_at: datetime
    source: str | None = None
    actor: str | None = None


class CustomerMerged(Event):
    """``merged_id`` was merged into the survivor ``customer_id``; re-point your records."""

    event_type: ClassVar[str] = "rapport.customer.merged.v1"
    topic: ClassVar[str] = CUSTOMER_TOPIC

    merged_id: UUID
    merged_by: str
    merged_at: datetime


class CustomerErased(Event):
    """A privacy erase: every part must delete or anonymise what it holds on the customer."""

    event_type: ClassVar[str] = "rapport.customer.erased.v1"
    topic: ClassVar[str] = CUSTOMER_TOPIC

    erased_at: datetime


# --- interactions ------------------------------------------------------------------------
class InteractionRecorded(Event):
    """A touchpoint (call, e-mail, chat, behaviour event…) was recorded."""

    event_type: ClassVar[str] = "rapport.interaction.recorded.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    interaction_id: UUID
    channel: str = Field(examples=["email", "call", "web"])
    kind: str = Field(examples=["note", "call", "message", "email_opened"])
    direction: Literal["inbound", "outbound"] | None = None
    occurred_at: datetime
    summary: str | None = None
    title: str | None = Field(
        default=None, description="The interaction's subject line (`subject` in the API)."
    )
    agent_id: str | None = Field(default=None, description="The employee who handled it.")
    source: str | None = Field(
        default=None, examples=["api", "sendgrid"], description="Who reported it."
    )
    metadata: dict[str, object] = Field(
        default_factory=dict,
        description="The typed details of its kind (call duration, e-mail campaign…), as "
        "documented for the interactions API.",
    )


class BehaviourRecorded(Event):
    """Web/app behaviour (page views, clicks, searches) of one customer, coalesced.

    Behaviour arrives at thousands of events per second and is rarely interesting one by one
    to other services, so interactions publishes one of these per customer per ingested batch
    instead of an :class:`InteractionRecorded` per page view. The individual events stay
    queryable in the interactions API.
    """

    event_type: ClassVar[str] = "rapport.interaction.behaviour_recorded.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    counts: dict[str, int] = Field(
        description="Events per kind in this batch.", examples=[{"page_view": 12, "search": 2}]
    )
    channels: list[str] = Field(default_factory=list, examples=[["web"]])
    first_occurred_at: datetime
    last_occurred_at: datetime
    last_channel: str = Field(examples=["web", "app"])
    urls: list[str] = Field(
        default_factory=list, description="Distinct URLs viewed or clicked (at most 20)."
    )
    products: list[str] = Field(
        default_factory=list, description="Distinct products viewed or clicked (at most 20)."
    )
    search_terms: list[str] = Field(
        default_factory=list, description="Distinct search terms (at most 20)."
    )


class TicketOpened(Event):
    """A support ticket was opened for the customer."""

    event_type: ClassVar[str] = "rapport.interaction.ticket_opened.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    ticket_id: UUID
    title: str
    category: str = Field(examples=["complaint", "question", "request", "incident"])
    priority: str = Field(examples=["low", "normal", "high", "urgent"])
    opened_at: datetime


class TicketStatusChanged(Event):
    """A ticket moved through open → pending → resolved → closed (or was reopened)."""

    event_type: ClassVar[str] = "rapport.interaction.ticket_status_changed.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    ticket_id: UUID
    status: Literal["open", "pending", "resolved", "closed"]
    previous_status: Literal["open", "pending", "resolved", "closed"]
    changed_at: datetime


class TicketSlaBreached(Event):
    """A ticket missed its first-response or resolution target (published once per target)."""

    event_type: ClassVar[str] = "rapport.interaction.ticket_sla_breached.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    ticket_id: UUID
    target: Literal["first_response", "resolution"]
    due_at: datetime
    breached_at: datetime
    priority: str = Field(examples=["low", "normal", "high", "urgent"])
    assignee: str | None = None


class SurveyAnswered(Event):
    """A CSAT (1 to 5) or NPS (0 to 10) answer from the customer."""

    event_type: ClassVar[str] = "rapport.interaction.survey_answered.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    response_id: UUID
    survey: Literal["csat", "nps"]
    score: int = Field(ge=0, le=10)
    ticket_id: UUID | None = None
    order_id: UUID | None = None
    answered_at: datetime


class TaskDue(Event):
    """A follow-up task fell due (published once per due time; rescheduling re-arms it).

    Marketing automation acts on care-plan tasks through this (``rule_id``/``rule_type``)."""

    event_type: ClassVar[str] = "rapport.interaction.task_due.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    task_id: UUID
    title: str
    assignee: str | None = None
    due_at: datetime
    source: Literal["manual", "care_plan"]
    rule_id: UUID | None = None
    rule_type: str | None = Field(
        default=None,
        examples=["birthday", "holiday", "periodic_revisit", "post_purchase", "low_csat"],
    )
    occurs_on: date | None = Field(
        default=None, description="The care-plan occasion (customer's local date)."
    )


class TaskCompleted(Event):
    """A follow-up task was marked done."""

    event_type: ClassVar[str] = "rapport.interaction.task_completed.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    task_id: UUID
    completed_at: datetime
    completed_by: str
    assignee: str | None = None
    rule_id: UUID | None = None


class CarePlanTriggered(Event):
    """An event-only care-plan rule fired for a customer (once per rule, customer and
    occasion). Rules that create tasks publish :class:`TaskDue` instead."""

    event_type: ClassVar[str] = "rapport.interaction.care_plan_triggered.v1"
    topic: ClassVar[str] = INTERACTION_TOPIC

    rule_id: UUID
    rule_type: str = Field(
        examples=["birthday", "holiday", "periodic_revisit", "post_purchase", "low_csat"]
    )
    rule_name: str
    occurs_on: date = Field(description="The occasion, in the customer's local calendar.")
    due_at: datetime = Field(description="When to act: the rule's local time on that date.")
    triggered_at: datetime


# --- orders ------------------------------------------------------------------------------
class OrderItem(BaseModel):
    """One line of an order, as the other services need it (products bought, amounts)."""

    model_config = ConfigDict(frozen=True)

    product_id: UUID
    sku: str
    quantity: int
    total: Decimal


class OrderCoupon(BaseModel):
    """A coupon redeemed by an order: its code, promotion and the money it took off."""

    model_config = ConfigDict(frozen=True)

    code: str
    promotion_id: UUID
    amount: Decimal


class OrderPlaced(Event):
    """An order was placed. Money is a decimal string with its ISO 4217 currency."""

    event_type: ClassVar[str] = "rapport.order.placed.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    order_id: UUID
    total: Decimal
    currency: str = Field(min_length=3, max_length=3)
    channel: str
    placed_at: datetime
    items: list[OrderItem] = Field(default_factory=list)
    source: str | None = None
    external_id: str | None = None
    #: Everything taken off the order (line discounts, coupons, points); ``None`` from
    #: publishers older than coupons.
    discount_total: Decimal | None = None
    #: Coupon codes redeemed by the order, and what each took off.
    coupons: list[OrderCoupon] = Field(default_factory=list)
    #: Loyalty points spent on the order (0: none).
    points_redeemed: int = 0


class OrderStatusChanged(Event):
    """An order moved through its status machine (paid, fulfilled, cancelled, refunded…)."""

    event_type: ClassVar[str] = "rapport.order.status_changed.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    order_id: UUID
    status: str
    previous_status: str
    changed_at: datetime
    total: Decimal | None = None
    paid_total: Decimal | None = None
    refunded_total: Decimal | None = None
    currency: str | None = None


class LoyaltyTierChanged(Event):
    """A customer's loyalty tier changed (``tier`` null: no tier any more).

    Upgrades happen as soon as points are earned; downgrades only at an evaluation, after the
    grace period. ``rolling_points``: points earned over the 12 months before ``changed_at``.
    """

    event_type: ClassVar[str] = "rapport.order.loyalty_tier_changed.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    tier: Literal["silver", "gold", "platinum"] | None
    previous_tier: Literal["silver", "gold", "platinum"] | None
    direction: Literal["upgrade", "downgrade"]
    rolling_points: int
    changed_at: datetime


class DealStageChanged(Event):
    """An open deal moved to another pipeline stage (``previous_stage_id`` null: created)."""

    event_type: ClassVar[str] = "rapport.order.deal_stage_changed.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    deal_id: UUID
    stage_id: UUID
    stage_name: str
    probability: Decimal = Field(ge=0, le=1)
    previous_stage_id: UUID | None = None
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    owner_id: str
    expected_close_date: date | None = None
    changed_by: str
    changed_at: datetime


class DealWon(Event):
    """A deal was won; ``order_id`` names the order it became, if one was created."""

    event_type: ClassVar[str] = "rapport.order.deal_won.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    deal_id: UUID
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    owner_id: str
    stage_id: UUID = Field(description="The stage the deal was in when it was won.")
    opened_at: datetime
    won_at: datetime
    order_id: UUID | None = None


class DealLost(Event):
    """A deal was lost."""

    event_type: ClassVar[str] = "rapport.order.deal_lost.v1"
    topic: ClassVar[str] = ORDER_TOPIC

    deal_id: UUID
    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    owner_id: str
    stage_id: UUID = Field(description="The stage the deal was in when it was lost.")
    opened_at: datetime
    lost_at: datetime
    reason: str | None = None


# --- segmentation ------------------------------------------------------------------------
class SegmentEntered(Event):
    """The customer now belongs to the segment (a rule now holds, or a list now has them)."""

    event_type: ClassVar[str] = "rapport.segment.entered.v1"
    topic: ClassVar[str] = SEGMENT_TOPIC

    segment_id: UUID
    entered_at: datetime
    segment_version: int | None = Field(
        default=None, description="The segment definition version that made the decision."
    )


class SegmentExited(Event):
    """The customer no longer belongs to the segment (or the segment was deleted)."""

    event_type: ClassVar[str] = "rapport.segment.exited.v1"
    topic: ClassVar[str] = SEGMENT_TOPIC

    segment_id: UUID
    exited_at: datetime
    segment_version: int | None = Field(
        default=None, description="The segment definition version that made the decision."
    )


class CustomerScored(Event):
    """Segmentation's latest scores for a customer (RFM, lifecycle stage, CLV, churn risk)."""

    event_type: ClassVar[str] = "rapport.segment.customer_scored.v1"
    topic: ClassVar[str] = SEGMENT_TOPIC

    recency: int | None = Field(default=None, ge=1, le=5)
    frequency: int | None = Field(default=None, ge=1, le=5)
    monetary: int | None = Field(default=None, ge=1, le=5)
    rfm_segment: str | None = Field(default=None, examples=["champions", "at_risk"])
    lifecycle_stage: str | None = Field(default=None, examples=["lead", "customer", "churned"])
    clv: Decimal | None = None
    clv_currency: str | None = None
    churn_risk: float | None = Field(default=None, ge=0, le=1)
    scored_at: datetime


# --- gateway (webhook front door) --------------------------------------------------------
class WebhookReceived(Event):
    """A partner webhook, verified and durably received by the gateway, body untouched.

    ``customer_id`` is not known at the front door; the gateway sets it to
    ``webhook_key(source, webhook_id)`` so deliveries of one webhook stay on one partition.
    """

    event_type: ClassVar[str] = "rapport.webhook.received.v1"
    topic: ClassVar[str] = WEBHOOK_TOPIC

    source: str = Field(examples=["shopify", "mailgun"])
    webhook_id: str
    received_at: datetime
    content_type: str = "application/json"
    body: str = Field(description="The raw request body: UTF-8 text, or base64 (see below).")
    body_encoding: Literal["utf-8", "base64"] = "utf-8"
    headers: dict[str, str] = Field(
        default_factory=dict, description="The request's headers (credentials removed)."
    )


def webhook_key(source: str, webhook_id: str) -> UUID:
    """The stable key of one partner webhook (stands in for a customer id)."""
    return uuid5(NAMESPACE_URL, f"rapport:webhook:{source}:{webhook_id}")


class WebhookProcessed(Event):
    """A service reports what became of a received webhook (shown in the delivery log).

    Keyed like the :class:`WebhookReceived` it answers (``webhook_key(source, webhook_id)``).
    """

    event_type: ClassVar[str] = "rapport.webhook.processed.v1"
    topic: ClassVar[str] = WEBHOOK_STATUS_TOPIC

    source: str
    webhook_id: str
    status: Literal["processed", "ignored", "failed"]
    detail: str | None = None
    processed_by: str = Field(examples=["orders"])
    processed_at: datetime
    resolved_customer_ids: list[UUID] = Field(
        default_factory=list,
        description="The customers the webhook was about, as far as the service resolved"
        " them: the gateway erases the stored body and headers when any of them is erased.",
    )
