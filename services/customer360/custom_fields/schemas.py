from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FieldType = Literal["string", "integer", "number", "boolean", "date", "enum"]
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class CustomFieldCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "membership_level",
                    "label": "Membership level",
                    "type": "enum",
                    "options": ["silver", "gold", "platinum"],
                    "required": False,
                }
            ]
        },
    )

    key: str = Field(pattern=KEY_PATTERN, description="How the API names it: `snake_case`.")
    label: str = Field(min_length=1, max_length=200)
    type: FieldType
    options: list[str] = Field(
        default_factory=list, max_length=200, description="The allowed values of an `enum`."
    )
    required: bool = Field(
        default=False, description="New profiles must have it; existing ones keep theirs."
    )
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _options_match_type(self) -> CustomFieldCreate:
        if self.type == "enum" and not self.options:
            raise ValueError("an enum field needs options")
        if self.type != "enum" and self.options:
            raise ValueError("only enum fields have options")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be unique")
        return self


class CustomFieldPatch(BaseModel):
    """What may change on a field: its type may not (existing values would stop fitting),
    and enum options may only be added."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, min_length=1, max_length=200)
    options: list[str] | None = Field(default=None, max_length=200)
    required: bool | None = None
    description: str | None = Field(default=None, max_length=2000)


class CustomFieldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    label: str
    type: FieldType
    options: list[str]
    required: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
