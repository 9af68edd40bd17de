from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.customer360.customer.schemas import CustomerRead, Email, ExternalId, SystemName


class ExternalRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: SystemName
    id: ExternalId


class ResolveRequest(BaseModel):
    """Who is this? Any of the identity keys; the first that matches wins (external id,
    then e-mail, then phone)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "wei.zhang@example.com",
                    "phone": "+8613812345678",
                    "external_id": {"system": "shopify", "id": "cus_7781"},
                    "display_name": "Wei Zhang",
                }
            ]
        },
    )

    email: Email | None = None
    phone: str | None = Field(default=None, max_length=40)
    external_id: ExternalRef | None = None
    display_name: str | None = Field(
        default=None, min_length=1, max_length=300, description="For a new prospect."
    )
    create: bool = Field(default=True, description="Create a prospect when nobody matches.")

    @model_validator(mode="after")
    def _some_key(self) -> ResolveRequest:
        if self.email is None and self.phone is None and self.external_id is None:
            raise ValueError("give at least one of email, phone, external_id")
        return self


class ResolveResult(BaseModel):
    customer_id: UUID
    created: bool = Field(description="A new prospect was created for these keys.")
    matched_by: list[Literal["external_id", "email", "phone"]] = Field(
        description="Which of the given keys belong to this customer."
    )
    other_customers: list[UUID] = Field(
        default_factory=list,
        description="Other customers owning some of the keys: likely duplicates to merge.",
    )
    customer: CustomerRead | None = Field(
        default=None, description="The profile, when within the caller's data scope."
    )


class MergeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"merged_ids": ["0b6f4a8e-1d2c-4e5f-8a9b-0c1d2e3f4a5b"]}]},
    )

    merged_ids: list[UUID] = Field(
        min_length=1, max_length=20, description="Customers to fold into this one."
    )


class Duplicate(BaseModel):
    score: float = Field(ge=0, le=1, description="1 - Π(1 - weight) over the reasons.")
    reasons: list[
        Literal[
            "same_name",
            "similar_name",
            "same_phone_number",
            "same_email_local_part",
            "same_company",
            "same_birthday",
        ]
    ]
    customer: CustomerRead


class Duplicates(BaseModel):
    items: list[Duplicate]
