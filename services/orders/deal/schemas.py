from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orders.money import Amount, CurrencyCode, quantum
from services.orders.order.schemas import LineCreate, SalesChannel

DealStatus = Literal["open", "won", "lost"]
Probability = Field(ge=0, le=1, max_digits=5, decimal_places=4, examples=["0.25"])


class StageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Proposal", "position": 3, "probability": "0.5"}]},
    )

    name: str = Field(min_length=1, max_length=100)
    position: int = Field(ge=0, le=10_000, description="Stages are listed by position.")
    probability: Decimal = Probability


class StageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    position: int | None = Field(default=None, ge=0, le=10_000)
    probability: Decimal | None = Field(default=None, ge=0, le=1, max_digits=5, decimal_places=4)


class StageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    position: int
    probability: Decimal = Field(
        description="Chance that a deal in this stage is won, 0-1, with 4 decimal places.",
        examples=["0.2500"],
    )

    @model_validator(mode="after")
    def _four_places(self) -> StageRead:
        self.probability = self.probability.quantize(Decimal("0.0001"))
        return self


class DealCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "7ca0b0a4-3c1e-4f8e-9d5e-0b1c2d3e4f50",
                    "title": "200 mugs for the office",
                    "amount": "2580.00",
                    "currency": "EUR",
                    "expected_close_date": "2026-12-15",
                }
            ]
        },
    )

    customer_id: UUID
    title: str = Field(min_length=1, max_length=300)
    amount: Amount
    currency: CurrencyCode
    owner_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Defaults to the caller."
    )
    stage_id: UUID | None = Field(default=None, description="Defaults to the first stage.")
    expected_close_date: date | None = None


class DealUpdate(BaseModel):
    """Only the fields sent change. ``amount`` and ``currency`` are checked together: the
    amount must fit the (new) currency's minor unit."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    owner_id: str | None = Field(default=None, min_length=1, max_length=200)
    expected_close_date: date | None = None


class StageMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage_id: UUID


class WonOrder(BaseModel):
    """The order the won deal becomes: in the deal's currency, for the deal's customer."""

    model_config = ConfigDict(extra="forbid")

    channel: SalesChannel = "sales_rep"
    currency: CurrencyCode | None = Field(
        default=None, description="If given, must equal the deal's currency (else 409)."
    )
    lines: list[LineCreate] = Field(min_length=1, max_length=500)


class DealWin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: WonOrder | None = Field(default=None, description="Also place this order.")


class DealLoss(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, examples=["chose a competitor"])


class DealRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    title: str
    amount: Decimal = Field(examples=["2580.00"])
    currency: str
    owner_id: str
    stage_id: UUID
    status: DealStatus
    expected_close_date: date | None
    closed_at: datetime | None
    lost_reason: str | None
    order_id: UUID | None
    created_at: datetime
    updated_at: datetime
    version: int

    @model_validator(mode="after")
    def _in_minor_units(self) -> DealRead:
        self.amount = self.amount.quantize(quantum(self.currency))
        return self


class StageChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_stage_id: UUID | None
    to_stage_id: UUID
    from_status: DealStatus | None
    to_status: DealStatus
    changed_by: str
    changed_at: datetime


class StageFigures(BaseModel):
    stage_id: UUID
    name: str
    position: int
    probability: Decimal
    deals: int
    amount: Decimal
    weighted: Decimal = Field(description="sum of amount x probability.")


class OwnerFigures(BaseModel):
    owner_id: str
    open_deals: int
    open_amount: Decimal
    won: int
    won_amount: Decimal
    lost: int
    win_rate: Decimal | None = Field(description="won / (won + lost), 4 places; null if none.")
    average_cycle_days: Decimal | None = Field(
        description="Mean days from creation to winning, over won deals; null if none."
    )


class PipelineSummary(BaseModel):
    currency: str
    stages: list[StageFigures] = Field(description="Open deals per stage, in stage order.")
    open_deals: int
    open_amount: Decimal
    weighted_amount: Decimal
    owners: list[OwnerFigures]


class MonthAmount(BaseModel):
    month: str = Field(examples=["2026-12"])
    revenue: Decimal


class PipelineMonth(BaseModel):
    month: str | None = Field(description="Expected close month; null: no date set.")
    deals: int
    amount: Decimal
    weighted: Decimal


class Forecast(BaseModel):
    currency: str
    as_of: date
    method: Literal["holt-linear"] = "holt-linear"
    alpha: Decimal
    beta: Decimal
    history: list[MonthAmount] = Field(
        description="Net revenue (paid minus refunded) of the orders placed in each complete "
        "month, oldest first, from the first month with orders."
    )
    revenue_forecast: list[MonthAmount]
    pipeline: list[PipelineMonth] = Field(
        description="Open deals by expected close month, weighted by their stage's probability."
    )
