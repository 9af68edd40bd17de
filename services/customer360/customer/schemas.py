from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field


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


class CustomerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str
    display_name: str
    emails: list[str]
    phones: list[str]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
