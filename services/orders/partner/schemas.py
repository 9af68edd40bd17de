"""The partner order webhook: what a shop platform posts to ``POST /webhooks/{source}``.

The body follows the Standard Webhooks payload shape — ``type``, ``timestamp``, ``data`` —
with Shopify-like field names in ``data``. Orders handles four types; any other ``type``
(or a body that is not such JSON) is not an order webhook and is left to other services::

    {"type": "order.created", "timestamp": "2026-11-20T10:00:00Z",
     "data": {"id": "1001", "currency": "EUR", "channel": "online_store",
              "created_at": "2026-11-20T09:59:00Z",
              "customer": {"id": "cus_7781", "email": "wei@example.com",
                           "phone": "+8613812345678", "name": "Wei Zhang"},
              "line_items": [{"sku": "MUG-BLUE-350", "quantity": 2, "price": "12.90",
                              "discount": "0.00", "tax_rate": "0.19"}],
              "shipping_address": {"city": "Berlin"}, "note": "gift"}}
    {"type": "order.paid", "timestamp": "…",
     "data": {"id": "1001", "payment_id": "pay_1", "amount": "30.70", "gateway": "card"}}
    {"type": "order.cancelled", "timestamp": "…", "data": {"id": "1001", "reason": "customer"}}
    {"type": "order.refunded", "timestamp": "…",
     "data": {"id": "1001", "refund_id": "re_1", "amount": "12.90", "reason": "damaged"}}

``data.id`` is the partner's order id (deduplicated per webhook source). Money is a decimal
string in the order's currency. Products are named by SKU. ``order.paid`` without ``amount``
pays what is due; ``payment_id``/``refund_id`` name one payment or refund (without them the
``webhook-id`` does). Unknown fields are ignored, so a platform's richer payloads pass.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.orders.money import Amount, CurrencyCode
from services.orders.order.schemas import SalesChannel

PartnerKind = Literal["created", "paid", "cancelled", "refunded"]
#: Webhook ``type`` → what it does to the order.
ORDER_WEBHOOK_TYPES: dict[str, PartnerKind] = {
    "order.created": "created",
    "order.paid": "paid",
    "order.cancelled": "cancelled",
    "order.refunded": "refunded",
}

_ID = Field(min_length=1, max_length=200)


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = _ID


class PartnerCustomer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, min_length=1, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def _some_key(self) -> PartnerCustomer:
        if not (self.id or self.email or self.phone):
            raise ValueError("the customer needs an id, an email or a phone")
        return self


class PartnerLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100_000)
    price: Amount
    discount: Amount = Decimal(0)
    tax_rate: Decimal = Field(default=Decimal(0), ge=0, le=1, max_digits=6, decimal_places=4)


class OrderCreatedData(_Data):
    currency: CurrencyCode
    channel: SalesChannel = "online_store"
    created_at: datetime | None = None
    customer: PartnerCustomer
    line_items: list[PartnerLine] = Field(min_length=1, max_length=500)
    shipping_address: dict[str, Any] | None = None
    note: str | None = Field(default=None, max_length=2000)


class OrderPaidData(_Data):
    payment_id: str | None = Field(default=None, min_length=1, max_length=200)
    amount: Amount | None = Field(default=None, gt=0)
    gateway: str = Field(default="partner", min_length=1, max_length=50)


class OrderCancelledData(_Data):
    reason: str | None = Field(default=None, max_length=500)


class OrderRefundedData(_Data):
    refund_id: str | None = Field(default=None, min_length=1, max_length=200)
    amount: Amount = Field(gt=0)
    reason: str | None = Field(default=None, max_length=500)


PartnerData = OrderCreatedData | OrderPaidData | OrderCancelledData | OrderRefundedData
DATA_MODELS: dict[PartnerKind, type[_Data]] = {
    "created": OrderCreatedData,
    "paid": OrderPaidData,
    "cancelled": OrderCancelledData,
    "refunded": OrderRefundedData,
}


class PartnerWebhook(BaseModel):
    """The envelope of the body: which action, when (partner's clock), and its data."""

    model_config = ConfigDict(extra="ignore")

    type: str
    timestamp: datetime | None = None
    data: dict[str, Any]


class PartnerEventRead(BaseModel):
    """One partner action as orders handled it."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    source: str
    external_order_id: str
    kind: PartnerKind
    event_ref: str = Field(description="Payment or refund id; empty for created/cancelled.")
    webhook_id: str = Field(description="The webhook that brought it (the latest attempt).")
    status: Literal["parked", "applied", "failed"]
    detail: str | None
    occurred_at: datetime = Field(description="When the partner says it happened.")
    received_at: datetime = Field(
        description="When the latest attempt arrived; a parked action is given up "
        "ORDERS_PARTNER_PARKED_TTL_S (7 days) after it."
    )
    applied_at: datetime | None
    order_id: UUID | None
