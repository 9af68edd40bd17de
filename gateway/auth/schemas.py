"""Request and response bodies of the API-key admin endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
)

from gateway.auth.roles import ROLE_SCOPES, Role

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyRead", "ApiKeyStatus"]

ApiKeyStatus = Literal["active", "expired", "revoked"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Shopify order sync",
                    "role": "partner",
                    "scopes": ["customers:read", "customers:write", "orders:write"],
                    "expires_at": "2027-06-30T00:00:00Z",
                }
            ]
        },
    )

    name: str = Field(
        min_length=1, max_length=200, description="What the key is for, shown in lists."
    )
    role: Role = Field(description="The role the key acts as; its scopes bound the key's.")
    scopes: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="A subset of the role's scopes. Omitted: all of the role's scopes.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working. Omitted: never."
    )

    @field_validator("scopes")
    @classmethod
    def _scopes_within_role(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        role = info.data.get("role")
        if role is None:  # the role itself is invalid; that error is reported
            return value
        outside = sorted(set(value) - ROLE_SCOPES[role])
        if outside:
            raise ValueError(f"not granted to role {role!r}: {', '.join(outside)}")
        return sorted(set(value))

    @field_validator("expires_at")
    @classmethod
    def _expires_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKeyRead(BaseModel):
    """An API key as listed; never carries its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    key_id: str = Field(description="The public part of the key: `rpk_<key_id>_…`.")
    name: str
    role: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Last use, to within a minute (updated at most once a minute)."
    )
    revoked_at: datetime | None
    revoked_by: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prefix(self) -> str:
        """How the key starts, to recognise it (e.g. in a partner's configuration)."""
        return f"rpk_{self.key_id}_"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> ApiKeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


class ApiKeyCreated(ApiKeyRead):
    """A new key, with its secret: the only time Rapport shows it."""

    key: str = Field(
        description="The full key. Shown once: store it now; Rapport keeps only a hash.",
        examples=["rpk_4fXk2Qp9LmZa_EXAMPLEexampleEXAMPLEexample00003oy2Ja"],
    )
