from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class CustomerFeaturesRead(BaseModel):
    """Every feature a segment rule can test (the rule's `field` names are these keys;
    maps take a key: `total_spent.EUR`, `interactions_by_channel.email`)."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: UUID
    display_name: str | None = Field(
        description="`null` until the customer's profile event has been seen."
    )
    kind: str | None
    owner_id: str | None
    team_id: str | None
    tags: list[str]
    lifecycle_stage: str | None
    locale: str | None
    acquisition_source: str | None
    acquisition_channel: str | None
    email_consent: bool | None = Field(description="`null`: never asked.")
    sms_consent: bool | None
    phone_consent: bool | None
    customer_created_at: datetime | None
    order_count: int
    total_spent: dict[str, Decimal] = Field(
        description="Exact sum of the customer's orders per ISO 4217 currency, as decimal "
        "strings. Currencies are never converted or added together.",
        examples=[{"EUR": "120.50", "USD": "9.99"}],
    )
    first_order_at: datetime | None
    last_order_at: datetime | None
    orders_30d: int = Field(description="Orders placed in the last 30 days (kept current).")
    orders_90d: int
    orders_365d: int
    interaction_count: int
    last_interaction_at: datetime | None
    interactions_by_channel: dict[str, int] = Field(examples=[{"email": 3, "call": 1}])
    interactions_by_kind: dict[str, int] = Field(examples=[{"message": 3, "page_view": 12}])
    ticket_count: int
    open_tickets: int = Field(description="Tickets open or pending now.")
    last_csat: int | None
    last_csat_at: datetime | None
    last_nps: int | None
    last_nps_at: datetime | None
    loyalty_tier: str | None = Field(
        default=None, description="As orders last announced: `silver`, `gold` or `platinum`."
    )
    loyalty_tier_at: datetime | None = None
    updated_at: datetime
