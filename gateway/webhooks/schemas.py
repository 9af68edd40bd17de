from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SOURCE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Accepted(BaseModel):
    status: Literal["accepted", "duplicate"] = Field(
        description="`duplicate`: this webhook-id was received before; nothing was done."
    )
    receipt_id: UUID


class SourceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "shopify", "description": "Shop orders"}]},
    )

    name: str = Field(pattern=SOURCE_NAME, description="Used in the URL: /webhooks/{name}.")
    description: str | None = Field(default=None, max_length=500)


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    description: str | None
    enabled: bool
    created_at: datetime
    url_path: str


class SecretIssued(BaseModel):
    """A new signing secret. It is shown this once: store it in the partner system."""

    id: UUID
    secret: str = Field(examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    created_at: datetime
    previous_secrets_expire_at: datetime | None = None


class SourceCreated(SourceRead):
    secret: SecretIssued


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_s: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="How long the current secrets stay valid beside the new one.",
    )


class ReceiptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    source: str
    webhook_id: str
    received_at: datetime
    content_type: str
    status: str = Field(description="published → processed | ignored | failed")
    status_detail: str | None
    processed_at: datetime | None
    replays: int
    customer_ids: list[UUID] = Field(
        default_factory=list, description="The customers the consuming services resolved it to."
    )
    body_erased_at: datetime | None = Field(
        default=None, description="When body and headers were erased with the customer."
    )


class ReceiptDetail(ReceiptRead):
    headers: dict[str, str]
    body: str = Field(description="The raw body as received (UTF-8; invalid bytes replaced).")
