from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orders.money import Amount

Tier = Literal["silver", "gold", "platinum"]
EntryKind = Literal["earn", "earn_reversal", "redeem", "redeem_return", "adjust"]
Multiplier = Decimal


class EarnRuleWrite(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "points_per_unit": "1",
                    "point_value": "0.01",
                    "category_multipliers": {"tea": "2"},
                    "product_multipliers": {},
                }
            ]
        },
    )

    points_per_unit: Decimal = Field(
        ge=0,
        le=10_000,
        max_digits=12,
        decimal_places=4,
        description="Points per currency unit spent (net of discounts, before tax).",
        examples=["1"],
    )
    point_value: Amount = Field(gt=0, description="Money one point takes off an order.")
    product_multipliers: dict[UUID, Decimal] = Field(default_factory=dict, max_length=1000)
    category_multipliers: dict[str, Decimal] = Field(default_factory=dict, max_length=1000)

    @model_validator(mode="after")
    def _multipliers(self) -> EarnRuleWrite:
        for value in (*self.product_multipliers.values(), *self.category_multipliers.values()):
            if not (0 <= value <= 100) or value != value.quantize(Decimal("0.0001")):
                raise ValueError("multipliers are decimals from 0 to 100, 4 places at most")
        return self


class EarnRuleRead(BaseModel):
    currency: str
    points_per_unit: Decimal
    point_value: Decimal
    product_multipliers: dict[str, Decimal]
    category_multipliers: dict[str, Decimal]
    configured: bool = Field(description="False: the default rule (no rule set for it).")


class TierSettingsWrite(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "silver_points": 500,
                    "gold_points": 2000,
                    "platinum_points": 5000,
                    "grace_days": 30,
                }
            ]
        },
    )

    silver_points: int = Field(gt=0, le=1_000_000_000)
    gold_points: int = Field(gt=0, le=1_000_000_000)
    platinum_points: int = Field(gt=0, le=1_000_000_000)
    grace_days: int = Field(ge=0, le=3650, description="How long below a tier before it goes.")

    @model_validator(mode="after")
    def _ascending(self) -> TierSettingsWrite:
        if not self.silver_points < self.gold_points < self.platinum_points:
            raise ValueError("thresholds must rise: silver < gold < platinum")
        return self


class TierSettingsRead(TierSettingsWrite):
    pass


class EvaluationRead(BaseModel):
    evaluated: int
    upgraded: int
    downgraded: int
    in_grace: int


class EntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: EntryKind
    points: int
    order_id: UUID | None
    note: str | None
    created_at: datetime


class LoyaltyRead(BaseModel):
    customer_id: UUID
    balance: int
    tier: Tier | None
    tier_since: datetime | None
    rolling_points: int = Field(description="Points earned over the last 12 months.")
    next_tier: Tier | None
    points_to_next_tier: int | None
    ledger: list[EntryRead] = Field(description="Newest first.")
    next_cursor: str | None
