from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orders.money import Amount, CurrencyCode, quantum

PromotionKind = Literal["percentage", "fixed"]
#: Codes are compared as typed, upper case, no spaces: ``SPRING-15``.
CODE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]{2,63}$"
Code = str


class PromotionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring tea week",
                    "kind": "percentage",
                    "value": "15",
                    "currency": "EUR",
                    "min_spend": "30.00",
                    "categories": ["tea"],
                    "starts_at": "2026-03-01T00:00:00Z",
                    "ends_at": "2026-03-08T00:00:00Z",
                    "per_customer_limit": 1,
                    "total_limit": 500,
                    "code": "SPRING-15",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    kind: PromotionKind
    value: Amount = Field(
        gt=0, description='Percent off (`"15"` = 15 %) or money off in `currency`.'
    )
    currency: CurrencyCode = Field(description="Orders in other currencies cannot use it.")
    min_spend: Amount = Field(
        default=Decimal(0),
        description="The order's goods after line discounts, before tax, must reach this.",
    )
    product_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    categories: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Only lines of these products or categories are discounted "
        "(both empty: every line).",
    )
    starts_at: datetime | None = Field(default=None, description="Defaults to now.")
    ends_at: datetime | None = Field(default=None, description="Exclusive; none: open-ended.")
    total_limit: int | None = Field(default=None, gt=0, le=100_000_000)
    per_customer_limit: int | None = Field(default=None, gt=0, le=1_000_000)
    code: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        description="A shared code anyone may use; omit to redeem by issued codes only.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PromotionCreate:
        if self.kind == "percentage" and self.value > 100:
            raise ValueError("a percentage is at most 100")
        if self.kind == "fixed" and self.value != self.value.quantize(quantum(self.currency)):
            raise ValueError(f"value: {self.currency} has fewer decimal places")
        if self.min_spend != self.min_spend.quantize(quantum(self.currency)):
            raise ValueError(f"min_spend: {self.currency} has fewer decimal places")
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise ValueError("ends_at must be after starts_at")
        if any(not c.strip() or len(c) > 100 for c in self.categories):
            raise ValueError("categories are 1 to 100 characters")
        return self


class PromotionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    active: bool | None = None
    ends_at: datetime | None = None
    total_limit: int | None = Field(default=None, gt=0, le=100_000_000)
    per_customer_limit: int | None = Field(default=None, gt=0, le=1_000_000)


class PromotionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    kind: PromotionKind
    value: Decimal
    currency: str
    min_spend: Decimal
    product_ids: list[UUID]
    categories: list[str]
    starts_at: datetime
    ends_at: datetime | None
    total_limit: int | None
    per_customer_limit: int | None
    uses: int = Field(description="Active redemptions (released ones no longer count).")
    code: str | None
    active: bool
    created_at: datetime

    @model_validator(mode="after")
    def _exact(self) -> PromotionRead:
        self.min_spend = self.min_spend.quantize(quantum(self.currency))
        self.value = (
            self.value.quantize(quantum(self.currency))
            if self.kind == "fixed"
            else self.value.normalize()
        )
        return self


class CodesIssue(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"customer_ids": ["7ca0b0a4-3c1e-4f8e-9d5e-0b1c2d3e4f50"]}]
        },
    )

    customer_ids: list[UUID] = Field(min_length=1, max_length=1000)
    max_uses: int = Field(default=1, gt=0, le=1000, description="Uses per issued code.")


class IssuedCode(BaseModel):
    customer_id: UUID
    code: str
    created: bool = Field(description="False: issued before, the same code again.")


class CodesIssued(BaseModel):
    promotion_id: UUID
    codes: list[IssuedCode]


class CouponRead(BaseModel):
    code: str
    promotion_id: UUID
    customer_id: UUID | None = Field(description="The recipient; null for a shared code.")
    uses: int
    max_uses: int | None
    promotion: PromotionRead
