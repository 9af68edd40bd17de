from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orders.money import Amount, CurrencyCode, quantum
from services.orders.promotion.schemas import CODE_PATTERN

SalesChannel = Literal["online_store", "physical_store", "marketplace", "sales_rep"]
OrderStatus = Literal["pending", "paid", "fulfilled", "cancelled", "partially_refunded", "refunded"]


class LineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: UUID
    quantity: int = Field(gt=0, le=100_000)
    unit_price: Amount | None = Field(
        default=None, description="Defaults to the product's catalogue price."
    )
    discount: Amount = Field(default=Decimal(0), description="Off this line, in money.")
    tax_rate: Decimal = Field(
        default=Decimal(0), ge=0, le=1, max_digits=6, decimal_places=4, examples=["0.19"]
    )


class OrderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "7ca0b0a4-3c1e-4f8e-9d5e-0b1c2d3e4f50",
                    "currency": "EUR",
                    "channel": "online_store",
                    "lines": [
                        {
                            "product_id": "0b6f4a8e-1d2c-4e5f-8a9b-0c1d2e3f4a5b",
                            "quantity": 2,
                            "discount": "5.00",
                            "tax_rate": "0.19",
                        }
                    ],
                    "source": "shopify",
                    "external_id": "#1001",
                }
            ]
        },
    )

    customer_id: UUID
    currency: CurrencyCode
    channel: SalesChannel
    lines: list[LineCreate] = Field(min_length=1, max_length=500)
    source: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,49}$")
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    placed_at: datetime | None = Field(default=None, description="Defaults to now.")
    shipping_address: dict[str, Any] | None = None
    note: str | None = Field(default=None, max_length=2000)
    coupon_codes: list[Annotated[str, Field(pattern=CODE_PATTERN)]] = Field(
        default_factory=list,
        max_length=10,
        description="Coupon codes to redeem (shared or issued to this customer), applied in "
        "this order; each must be valid or the order is refused with a 422 naming it.",
        examples=[["SPRING-15"]],
    )
    loyalty_points: int = Field(
        default=0,
        ge=0,
        le=100_000_000,
        description="Loyalty points to spend on this order, at the currency's point value; "
        "beyond the balance answers 422 `insufficient-points`.",
    )


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount = Field(gt=0)
    method: str = Field(min_length=1, max_length=50, examples=["card"])
    reference: str | None = Field(default=None, max_length=200)


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount = Field(gt=0)
    reason: str | None = Field(default=None, max_length=500)


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["fulfilled", "cancelled"]


class LineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    product_id: UUID
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    discount: Decimal = Field(description="Everything off the line, coupons and points included.")
    promotion_discount: Decimal = Field(description="The part of `discount` from coupons/points.")
    tax_rate: Decimal
    tax: Decimal
    total: Decimal


class DiscountRead(BaseModel):
    """A coupon or loyalty points applied to the order (`released` after a cancel or a full
    refund gave it back)."""

    model_config = ConfigDict(from_attributes=True)

    kind: Literal["coupon", "points"]
    code: str | None
    promotion_id: UUID | None
    points: int | None
    amount: Decimal
    status: Literal["active", "released"]


class PaymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    amount: Decimal
    method: str
    reference: str | None
    created_at: datetime


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    amount: Decimal
    reason: str | None
    created_at: datetime


class OrderRead(BaseModel):
    """Money is returned as decimal strings in the currency's minor unit (`"19.99"`,
    `"500"` for JPY)."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    status: OrderStatus
    channel: SalesChannel
    currency: str
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    paid_total: Decimal
    refunded_total: Decimal
    source: str | None
    external_id: str | None
    shipping_address: dict[str, Any] | None
    note: str | None
    placed_at: datetime
    fulfilled_at: datetime | None
    cancelled_at: datetime | None
    lines: list[LineRead]
    payments: list[PaymentRead]
    refunds: list[RefundRead]
    discounts: list[DiscountRead] = Field(default_factory=list)
    version: int

    @model_validator(mode="after")
    def _in_minor_units(self) -> OrderRead:
        def q(value: Decimal) -> Decimal:
            return value.quantize(quantum(self.currency))

        for field in (
            "subtotal",
            "discount_total",
            "tax_total",
            "total",
            "paid_total",
            "refunded_total",
        ):
            setattr(self, field, q(getattr(self, field)))
        for line in self.lines:
            line.unit_price, line.discount = q(line.unit_price), q(line.discount)
            line.tax, line.total = q(line.tax), q(line.total)
            line.promotion_discount = q(line.promotion_discount)
        for discount in self.discounts:
            discount.amount = q(discount.amount)
        for payment in self.payments:
            payment.amount = q(payment.amount)
        for refund in self.refunds:
            refund.amount = q(refund.amount)
        return self
