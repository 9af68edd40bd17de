from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints

from services.customer360.customer.schemas import CustomerRead
from services.customer360.models import CustomerSpend, CustomerSummary, TimelineEntry
from shared.auth import Principal
from shared.privacy import PII_SCOPE

#: Money as a plain decimal string (``"120.50"``, never ``"1.2E+2"``).
Money = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str)]

#: A timeline kind (``order.placed``) or family (``order``).
KindFilter = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}(\.[a-z0-9_]{1,60})?$", max_length=101)
]

_TIMELINE_EXAMPLE: dict[str, Any] = {
    "id": 4711,
    "occurred_at": "2026-11-23T09:30:00Z",
    "kind": "order.placed",
    "title": "Order placed: 120.50 EUR",
    "summary": None,
    "reference_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "data": {"total": "120.50", "currency": "EUR", "channel": "web"},
}


class TimelineEntryRead(BaseModel):
    """One thing that happened to the customer."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_TIMELINE_EXAMPLE]}
    )

    id: int
    occurred_at: datetime
    kind: str = Field(
        description="`order.placed`, `order.status_changed`, `interaction.<kind>`, "
        "`ticket.opened`, `ticket.<status>`, `survey.csat`, `survey.nps`, `segment.entered`, "
        "`segment.exited`, `profile.created`, `profile.updated`, `consent.changed`, "
        "`customer.merged`.",
        examples=["order.placed", "interaction.call"],
    )
    title: str = Field(description="A one-line, human-readable description.")
    summary: str | None = Field(
        default=None,
        description="Free text from the source (an interaction's summary, a ticket's title). "
        "It may hold personal data, so it is `null` unless the caller holds `customers:pii`.",
    )
    reference_id: UUID | None = Field(
        default=None,
        description="The order, interaction, ticket, survey response, segment or merged "
        "customer the entry is about.",
    )
    data: dict[str, Any] = Field(description="A few details, depending on `kind`.")

    @classmethod
    def for_principal(cls, entry: TimelineEntry, principal: Principal) -> TimelineEntryRead:
        read = cls.model_validate(entry)
        if read.summary is None or principal.has(PII_SCOPE):
            return read
        return read.model_copy(update={"summary": None})


class CustomerAggregates(BaseModel):
    """Figures folded from the other services' events as they arrive (usually well under a
    second behind the source). All zero / empty for a customer no event mentioned yet."""

    order_count: int = Field(description="Orders placed and not cancelled or refunded.")
    spend: dict[str, Money] = Field(
        description="Exact spend per ISO 4217 currency, over the orders counted; currencies "
        "are never added together.",
        examples=[{"EUR": "120.50", "USD": "9.99"}],
    )
    average_order_value: dict[str, Money] = Field(
        description="Spend divided by order count, per currency.", examples=[{"EUR": "60.25"}]
    )
    first_order_at: datetime | None
    last_order_at: datetime | None
    last_interaction_at: datetime | None
    last_interaction_channel: str | None = Field(examples=["email"])
    open_tickets: int = Field(description="Tickets open or pending.")
    csat_average: float | None = Field(
        description="Mean CSAT (1 to 5) over every answer, two decimals.", examples=[4.5]
    )
    csat_count: int
    last_nps: int | None = Field(description="The latest NPS answer (0 to 10).", examples=[9])
    last_nps_at: datetime | None
    segment_ids: list[UUID] = Field(description="Segments the customer is in now.")
    recency: int | None = Field(description="RFM recency score, 1 to 5.")
    frequency: int | None = Field(description="RFM frequency score, 1 to 5.")
    monetary: int | None = Field(description="RFM monetary score, 1 to 5.")
    rfm_segment: str | None = Field(examples=["champions"])
    lifecycle_stage: str | None = Field(
        description="As scored by segmentation (the profile has its own, set by people).",
        examples=["customer"],
    )
    clv: Money | None = Field(description="Customer lifetime value, in `clv_currency`.")
    clv_currency: str | None
    churn_risk: float | None = Field(description="0 (staying) to 1 (leaving).")
    scored_at: datetime | None
    loyalty_tier: str | None = Field(
        default=None,
        description="The loyalty tier orders last announced (`silver`, `gold`, `platinum`).",
        examples=["gold"],
    )
    loyalty_tier_at: datetime | None = Field(default=None, description="When it changed.")
    updated_at: datetime | None = Field(description="When the last event changed these figures.")

    @classmethod
    def build(
        cls, summary: CustomerSummary | None, spend: list[CustomerSpend]
    ) -> CustomerAggregates:
        totals = {s.currency: s.total for s in spend if s.order_count > 0}
        averages = {
            s.currency: _average(s.total, s.order_count) for s in spend if s.order_count > 0
        }
        if summary is None:
            return cls(
                order_count=0,
                spend={},
                average_order_value={},
                first_order_at=None,
                last_order_at=None,
                last_interaction_at=None,
                last_interaction_channel=None,
                open_tickets=0,
                csat_average=None,
                csat_count=0,
                last_nps=None,
                last_nps_at=None,
                segment_ids=[],
                recency=None,
                frequency=None,
                monetary=None,
                rfm_segment=None,
                lifecycle_stage=None,
                clv=None,
                clv_currency=None,
                churn_risk=None,
                scored_at=None,
                updated_at=None,
            )
        return cls(
            order_count=summary.order_count,
            spend=totals,
            average_order_value=averages,
            first_order_at=summary.first_order_at,
            last_order_at=summary.last_order_at,
            last_interaction_at=summary.last_interaction_at,
            last_interaction_channel=summary.last_interaction_channel,
            open_tickets=summary.open_tickets,
            csat_average=round(summary.csat_sum / summary.csat_count, 2)
            if summary.csat_count
            else None,
            csat_count=summary.csat_count,
            last_nps=summary.last_nps,
            last_nps_at=summary.last_nps_at,
            segment_ids=sorted(summary.segment_ids, key=str),
            recency=summary.recency,
            frequency=summary.frequency,
            monetary=summary.monetary,
            rfm_segment=summary.rfm_segment,
            lifecycle_stage=summary.lifecycle_stage,
            clv=summary.clv,
            clv_currency=summary.clv_currency,
            churn_risk=summary.churn_risk,
            scored_at=summary.scored_at,
            loyalty_tier=summary.loyalty_tier,
            loyalty_tier_at=summary.loyalty_tier_at,
            updated_at=summary.updated_at,
        )


def _average(total: Decimal, count: int) -> Decimal:
    """``total / count`` at the total's own precision: ``30.00 / 4`` → ``7.50``,
    ``100 / 3`` (yen) → ``33``."""
    raw = total.as_tuple().exponent
    exponent = min(raw, 0) if isinstance(raw, int) else 0
    return (total / count).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)


class Customer360Read(BaseModel):
    """Everything about one customer in one answer: the profile, the figures, and what
    happened last."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "profile": {"id": "7ca0b6a2-…", "display_name": "张伟", "…": "…"},
                    "aggregates": {
                        "order_count": 2,
                        "spend": {"EUR": "120.50"},
                        "average_order_value": {"EUR": "60.25"},
                        "last_interaction_channel": "email",
                        "open_tickets": 1,
                        "csat_average": 4.5,
                        "…": "…",
                    },
                    "timeline": [_TIMELINE_EXAMPLE],
                    "timeline_next_cursor": "WyIyMDI2Il0",
                }
            ]
        }
    )

    profile: CustomerRead
    aggregates: CustomerAggregates
    timeline: list[TimelineEntryRead] = Field(description="The latest entries, newest first.")
    timeline_next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` to `GET /customers/{id}/timeline` for older entries.",
    )
