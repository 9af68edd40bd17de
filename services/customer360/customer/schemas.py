from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from services.customer360.customer.normalize import normalize_email
from services.customer360.models import Customer
from shared.auth import Principal
from shared.events import ConsentState
from shared.privacy import PII_SCOPE, mask_email, mask_phone

ConsentChannel = Literal["email", "sms", "phone"]
#: At least one character that is whitespace neither to JSON Schema (ECMA ``\s``) nor to
#: pydantic's stripping (Unicode White_Space, with U+0085), nor one of U+001C-U+001F: the
#: document then refuses the values that stripping would leave empty (a vertical tab alone
#: was schema-valid and refused with 422, which contract fuzzing caught).
_NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_NOT_BLANK),
]
ShortText = Tag
SystemName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,49}$")]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class _NoOtherKeys:
    """A dict whose keys have a pattern is documented as ``patternProperties``, which says
    nothing about keys that do not match: validation refuses them, and so does the document
    (``additionalProperties: false``)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["additionalProperties"] = False
        return schema


ExternalIds = Annotated[dict[SystemName, ExternalId], _NoOtherKeys()]
ExternalIdsPatch = Annotated[dict[SystemName, ExternalId | None], _NoOtherKeys()]
Email = Annotated[str, AfterValidator(normalize_email)]
_TIMEZONES = frozenset(available_timezones())

_EXAMPLE: dict[str, Any] = {
    "kind": "person",
    "family_name": "张",
    "given_name": "伟",
    "emails": ["wei.zhang@example.com"],
    "phones": ["+86 138 1234 5678"],
    "addresses": [{"kind": "home", "line1": "1 Century Ave", "city": "Shanghai", "country": "CN"}],
    "birthday": "1990-05-17",
    "locale": "zh-CN",
    "timezone": "Asia/Shanghai",
    "acquisition_source": "wechat-campaign-2026",
    "acquisition_channel": "social",
    "tags": ["vip"],
    "consent": {"email": {"granted": True, "source": "signup-form"}},
    "external_ids": {"shopify": "cus_7781"},
    "custom_fields": {"loyalty_number": "L-001"},
}


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["home", "work", "billing", "shipping", "other"] = "home"
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2", examples=["CN"]
    )


class ConsentInput(BaseModel):
    """A consent decision; the time is set by the server."""

    model_config = ConfigDict(extra="forbid")

    granted: bool
    source: str | None = Field(default=None, max_length=100, examples=["signup-form"])


class _ProfileFields(BaseModel):
    """Fields a client may set, shared by create and PATCH."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="Shown name; defaults to the family and given names (family first, "
        "unspaced, for Chinese, Japanese and Korean names).",
    )
    given_name: str | None = Field(default=None, max_length=150)
    family_name: str | None = Field(default=None, max_length=150)
    company_id: UUID | None = Field(
        default=None, description="The company (a customer of kind `company`) a person is with."
    )
    emails: list[Email] | None = Field(default=None, max_length=20)
    phones: list[str] | None = Field(
        default=None,
        max_length=20,
        description="Any written form; stored as E.164. Without `+`, read in the service's "
        "default region.",
    )
    addresses: list[Address] | None = Field(default=None, max_length=20)
    birthday: date | None = None
    gender: str | None = Field(default=None, max_length=32, examples=["female"])
    locale: str | None = Field(
        default=None, pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", examples=["zh-CN"]
    )
    timezone: str | None = Field(default=None, max_length=64, examples=["Asia/Shanghai"])
    acquisition_source: str | None = Field(default=None, max_length=100)
    acquisition_channel: str | None = Field(default=None, max_length=50, examples=["social"])
    lifecycle_stage: str | None = Field(default=None, max_length=30, examples=["lead"])
    tags: list[Tag] | None = Field(default=None, max_length=100)
    consent: dict[ConsentChannel, ConsentInput] | None = None
    external_ids: ExternalIds | None = Field(
        default=None, max_length=20, description="Ids in partner systems, by system name."
    )
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="Values of the admin-defined custom fields (`/custom-fields`)."
    )
    owner_id: str | None = Field(default=None, max_length=200, description="The owning sales rep.")
    team_id: str | None = Field(default=None, max_length=100)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _TIMEZONES:
            raise ValueError("not an IANA time zone name (e.g. Asia/Shanghai)")
        return value

    @field_validator("birthday")
    @classmethod
    def _past_birthday(cls, value: date | None) -> date | None:
        if value is not None and not date(1900, 1, 1) <= value <= date.today():
            raise ValueError("birthday must be between 1900-01-01 and today")
        return value


class CustomerCreate(_ProfileFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [_EXAMPLE]},
    )

    kind: Literal["person", "company"] = "person"


class CustomerPatch(_ProfileFields):
    """JSON Merge Patch (RFC 7396): fields left out stay; `null` clears a field; in
    `custom_fields`, `consent` and `external_ids` only the keys given change (`null` removes
    a key)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tags": ["vip", "wholesale"], "consent": {"sms": {"granted": False}}}]
        },
    )

    consent: dict[ConsentChannel, ConsentInput | None] | None = None  # type: ignore[assignment]
    external_ids: ExternalIdsPatch | None = Field(  # type: ignore[assignment]
        default=None, max_length=20
    )


class CustomerRead(BaseModel):
    """A profile. Personal data (e-mails, phones, addresses, birthday) is masked unless the
    caller holds `customers:pii`."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str
    status: Literal["active", "merged", "erased"]
    display_name: str
    given_name: str | None
    family_name: str | None
    company_id: UUID | None
    emails: list[str]
    phones: list[str]
    addresses: list[dict[str, Any]]
    birthday: date | None
    gender: str | None
    locale: str | None
    timezone: str | None
    acquisition_source: str | None
    acquisition_channel: str | None
    lifecycle_stage: str | None
    tags: list[str]
    consent: dict[str, ConsentState]
    external_ids: dict[str, str]
    custom_fields: dict[str, Any]
    owner_id: str | None
    team_id: str | None
    version: int = Field(description='Changes on every write; the `ETag` is `"<version>"`.')
    created_at: datetime
    updated_at: datetime

    @classmethod
    def for_principal(cls, customer: Customer, principal: Principal) -> CustomerRead:
        read = cls.model_validate(customer)
        if principal.has(PII_SCOPE):
            return read
        return read.model_copy(update=masked_pii(read.model_dump(include=set(PII_FIELDS))))


#: Profile fields that are personal data: masked without ``customers:pii``.
PII_FIELDS = frozenset({"emails", "phones", "addresses", "birthday"})


def masked_pii(values: dict[str, Any]) -> dict[str, Any]:
    """Masked versions of whichever PII fields ``values`` holds."""
    masked: dict[str, Any] = {}
    for field, value in values.items():
        if field == "emails" and value is not None:
            masked[field] = [mask_email(e) for e in value]
        elif field == "phones" and value is not None:
            masked[field] = [mask_phone(p) for p in value]
        elif field == "addresses" and value:
            masked[field] = [
                {"kind": a.get("kind"), "country": a.get("country"), "masked": True} for a in value
            ]
        elif field == "birthday":
            masked[field] = None
        else:
            masked[field] = value
    return masked


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: UUID
    action: str = Field(examples=["created", "updated", "merged", "erased", "imported"])
    actor: str
    changes: dict[str, Any] = Field(
        examples=[{"display_name": {"before": "Wei", "after": "张伟"}}],
        description="Field → `{before, after}`; personal data masked without `customers:pii`.",
    )
    at: datetime
