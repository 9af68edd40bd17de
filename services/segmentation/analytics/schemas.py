from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

_SCORE = Field(ge=1, le=5, description="Quintile 1-5 against all customers with orders.")


class CustomerScoresRead(BaseModel):
    """A customer's analytics; see the endpoint description for the definitions."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "6f1c2a7e-54a3-4d0e-9f7b-3c2a1e9d8b70",
                    "recency": 5,
                    "frequency": 4,
                    "monetary": 4,
                    "rfm_segment": "champions",
                    "lifecycle_stage": "loyal",
                    "order_count": 6,
                    "first_order_at": "2026-03-02T10:15:00Z",
                    "last_order_at": "2026-11-20T18:40:00Z",
                    "historical_clv": {"EUR": "642.5000"},
                    "predicted_clv": "3520.18",
                    "clv_currency": "EUR",
                    "churn_risk": "0.00",
                    "scored_at": "2026-11-23T12:00:00Z",
                    "boundaries_computed_at": "2026-11-23T11:00:00Z",
                }
            ]
        },
    )

    customer_id: UUID
    recency: int | None = _SCORE
    frequency: int | None = _SCORE
    monetary: int | None = Field(
        ge=1,
        le=5,
        description="Quintile of net paid in `clv_currency`, among customers "
        "whose main currency is the same.",
    )
    rfm_segment: str | None = Field(
        description="Named RFM group (snake_case); `null` for a customer without orders.",
        examples=["champions"],
    )
    lifecycle_stage: str = Field(
        examples=["repeat"],
        description="prospect, first_time, repeat, loyal, at_risk or churned.",
    )
    order_count: int = Field(description="Orders that count (not cancelled or refunded).")
    first_order_at: datetime | None
    last_order_at: datetime | None
    historical_clv: dict[str, Decimal] = Field(
        description="Net paid (paid - refunded) per ISO 4217 currency; never converted.",
        examples=[{"EUR": "120.5000", "USD": "9.9900"}],
    )
    predicted_clv: Decimal | None = Field(
        description="Expected lifetime value in `clv_currency`: paid so far plus the "
        "expected purchases over the horizon, discounted by churn risk."
    )
    clv_currency: str | None = Field(examples=["EUR"])
    churn_risk: Decimal | None = Field(ge=0, le=1, examples=["0.35"])
    scored_at: datetime | None = Field(description="`null` for a prospect never scored.")
    boundaries_computed_at: datetime | None = Field(
        default=None,
        description="When the quintile boundaries the R, F, M scores rest on were computed.",
    )


class RfmGroupCount(BaseModel):
    group: str = Field(examples=["champions"])
    label: str = Field(examples=["Champions"])
    customers: int = Field(ge=0, examples=[42])


class PassRead(BaseModel):
    """One batch pass: new boundaries, then every customer rescored."""

    model_config = ConfigDict(from_attributes=True)

    trigger: Literal["schedule", "request"]
    started_at: datetime = Field(description="Also when its boundaries were computed.")
    finished_at: datetime | None = Field(
        description="`null` while the pass runs (or if it died before the end)."
    )
    population: int | None
    customers_rescored: int | None
    scores_published: int | None


class RfmSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "groups": [
                        {"group": "champions", "label": "Champions", "customers": 42},
                        {"group": "loyal", "label": "Loyal", "customers": 97},
                        {"group": "lost", "label": "Lost", "customers": 310},
                    ],
                    "scored_customers": 449,
                    "unscored_customers": 0,
                    "boundaries_computed_at": "2026-11-23T11:00:00Z",
                    "last_pass": {
                        "trigger": "schedule",
                        "started_at": "2026-11-23T11:00:00Z",
                        "finished_at": "2026-11-23T11:00:04Z",
                        "population": 449,
                        "customers_rescored": 449,
                        "scores_published": 12,
                    },
                }
            ]
        }
    )

    groups: list[RfmGroupCount] = Field(
        description="All eleven named groups, best first, zero counts included."
    )
    scored_customers: int = Field(ge=0, description="Customers in a group (the sum).")
    unscored_customers: int = Field(
        ge=0, description="Customers with orders but no R or F score yet (no boundaries)."
    )
    boundaries_computed_at: datetime | None
    last_pass: PassRead | None = Field(
        description="The latest batch pass (scores of customers without new orders are as "
        "fresh as its `finished_at`)."
    )


class RecomputeRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "state": "done",
                    "accepted_at": "2026-11-23T12:00:00Z",
                    "computed_at": "2026-11-23T12:00:00Z",
                    "population": 1520,
                    "customers_rescored": 1520,
                    "scores_published": 37,
                },
                {
                    "state": "accepted",
                    "accepted_at": "2026-11-23T12:00:00Z",
                    "computed_at": None,
                    "population": None,
                    "customers_rescored": None,
                    "scores_published": None,
                },
            ]
        }
    )

    state: Literal["accepted", "done"] = Field(
        description="`accepted`: the pass runs in the background (202); `done`: it ran (200)."
    )
    accepted_at: datetime
    computed_at: datetime | None = Field(
        default=None, description="The clock reading the new boundaries rest on."
    )
    population: int | None = Field(
        default=None, ge=0, description="Customers with orders that count."
    )
    customers_rescored: int | None = Field(default=None, ge=0)
    scores_published: int | None = Field(
        default=None,
        ge=0,
        description="`CustomerScored` events queued: customers whose scores changed.",
    )
