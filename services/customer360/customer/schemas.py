from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.customer360.models import Customer
from shared.auth import Principal
from shared.privacy import PII_SCOPE, mask_email, mask_phone


class CustomerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"display_name": "张伟 (Wei Zhang)", "emails": ["wei@example.com"], "tags": ["vip"]}
            ]
        },
    )

    kind: Literal["person", "company"] = "person"
    display_name: str = Field(min_length=1, max_length=300)
    emails: list[EmailStr] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(default_factory=list, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=100)
    owner_id: str | None = Field(
        default=None,
        max_length=200,
        description="The owning sales rep; defaults to the caller when the caller is a user.",
    )
    team_id: str | None = Field(
        default=None, max_length=100, description="Defaults to the caller's team."
    )


class CustomerRead(BaseModel):
    """A profile. E-mails and phones are masked unless the caller holds `customers:pii`."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str
    display_name: str
    emails: list[str]
    phones: list[str]
    tags: list[str]
    owner_id: str | None
    team_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def for_principal(cls, customer: Customer, principal: Principal) -> "CustomerRead":
        read = cls.model_validate(customer)
        if principal.has(PII_SCOPE):
            return read
        return read.model_copy(
            update={
                "emails": [mask_email(e) for e in read.emails],
                "phones": [mask_phone(p) for p in read.phones],
            }
        )
