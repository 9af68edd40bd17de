from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.orders.money import Amount, CurrencyCode


class ProductCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "sku": "MUG-BLUE-350",
                    "name": "Blue mug, 350 ml",
                    "category": "kitchen",
                    "price": "12.90",
                    "currency": "EUR",
                }
            ]
        },
    )

    sku: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="Your stock-keeping unit; unique across the catalogue.",
    )
    name: str = Field(min_length=1, max_length=300)
    category: str | None = Field(default=None, min_length=1, max_length=100)
    price: Amount
    currency: CurrencyCode
    active: bool = Field(default=True, description="Inactive products cannot be ordered.")


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    sku: str
    name: str
    category: str | None
    price: Decimal = Field(
        description="Decimal string with 4 decimal places.", examples=["12.9000"]
    )
    currency: str = Field(examples=["EUR"])
    active: bool
    created_at: datetime
