from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class CustomerFeaturesRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    customer_id: UUID
    display_name: str | None = Field(
        description="`null` until the customer's profile event has been seen."
    )
    order_count: int
    total_spent: dict[str, Decimal] = Field(
        description="Exact sum of the customer's orders per ISO 4217 currency, as decimal "
        "strings. Currencies are never converted or added together.",
        examples=[{"EUR": "120.50", "USD": "9.99"}],
    )
    last_order_at: datetime | None
    interaction_count: int
    last_interaction_at: datetime | None
    updated_at: datetime
