"""The interaction contract: common fields, and typed ``metadata`` per kind.

``metadata`` is a discriminated union whose tag is the interaction's ``kind`` (a sibling
field, so clients do not repeat it inside ``metadata``): :data:`METADATA_BY_KIND` picks the
model, which forbids unknown fields and bounds every string, so an item's size is bounded
too. Errors point into the body as usual (``/body/metadata/duration_s``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

Channel = Literal["call", "email", "sms", "chat", "social", "meeting", "note", "web", "app"]
Kind = Literal[
    "message",
    "call",
    "meeting",
    "visit",
    "note",
    "mention",
    "comment",
    "like",
    "share",
    "page_view",
    "click",
    "search",
    "email_delivered",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "feedback",
    "complaint",
]
Direction = Literal["inbound", "outbound"]

#: Kinds that are web/app behaviour: high volume, coalesced into one event per customer.
BEHAVIOUR_KINDS: frozenset[str] = frozenset({"page_view", "click", "search"})

#: Where each kind can happen (``None``: on any channel).
CHANNELS_BY_KIND: dict[str, frozenset[str] | None] = {
    "message": frozenset({"email", "sms", "chat", "social"}),
    "call": frozenset({"call"}),
    "meeting": frozenset({"meeting"}),
    "visit": frozenset({"meeting"}),
    "note": None,
    "mention": frozenset({"social"}),
    "comment": frozenset({"social"}),
    "like": frozenset({"social"}),
    "share": frozenset({"social"}),
    "page_view": frozenset({"web", "app"}),
    "click": frozenset({"web", "app"}),
    "search": frozenset({"web", "app"}),
    "email_delivered": frozenset({"email"}),
    "email_opened": frozenset({"email"}),
    "email_clicked": frozenset({"email"}),
    "email_bounced": frozenset({"email"}),
    "feedback": None,
    "complaint": None,
}

#: Timestamps outside [EARLIEST, now + FUTURE_TOLERANCE] are refused as absurd.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=5)

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=320)]
PhoneNumber = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageMetadata(_Metadata):
    """``message``: an e-mail, SMS, chat or direct message."""

    thread_id: Text200 | None = None
    message_id: Text200 | None = None
    from_address: Address | None = Field(default=None, description="Sender (e-mail, number…).")
    to_address: Address | None = None
    attachments: int | None = Field(default=None, ge=0, le=1000)


class CallMetadata(_Metadata):
    """``call``: a phone or video call."""

    duration_s: int | None = Field(default=None, ge=0, le=86_400)
    outcome: Literal["answered", "missed", "voicemail", "busy", "failed"] | None = None
    from_number: PhoneNumber | None = None
    to_number: PhoneNumber | None = None
    recording_url: Url | None = None


class MeetingMetadata(_Metadata):
    """``meeting`` and ``visit``: in person or online."""

    location: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    duration_min: int | None = Field(default=None, ge=0, le=1440)
    attendees: list[Text200] = Field(default_factory=list, max_length=50)


class NoteMetadata(_Metadata):
    """``note``: free text in ``summary``; nothing typed."""

    pinned: bool = False


class SocialMetadata(_Metadata):
    """``mention``, ``comment``, ``like``, ``share`` on a social network."""

    network: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$")] | None = Field(
        default=None, examples=["instagram", "weibo", "linkedin"]
    )
    handle: Text200 | None = None
    post_url: Url | None = None


class PageViewMetadata(_Metadata):
    """``page_view``: a page or app screen seen."""

    url: Url
    title: Annotated[str, StringConstraints(max_length=500)] | None = None
    referrer: Url | None = None
    product: Text200 | None = Field(default=None, description="Product shown (id or SKU).")
    session_id: Text200 | None = None


class ClickMetadata(_Metadata):
    """``click``: an element clicked."""

    url: Url | None = None
    element: Text200 | None = None
    product: Text200 | None = Field(default=None, description="Product clicked (id or SKU).")
    session_id: Text200 | None = None


class SearchMetadata(_Metadata):
    """``search``: a site or app search."""

    term: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    results: int | None = Field(default=None, ge=0)
    session_id: Text200 | None = None


class EmailEventMetadata(_Metadata):
    """``email_delivered``, ``email_opened``, ``email_clicked``, ``email_bounced``: what an
    e-mail platform reports about a message sent to the customer."""

    message_id: Text200 | None = None
    campaign: Text200 | None = None
    url: Url | None = Field(default=None, description="The link clicked (email_clicked).")
    bounce_type: Literal["hard", "soft"] | None = None
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None


class FeedbackMetadata(_Metadata):
    """``feedback`` and ``complaint``."""

    topic: Text200 | None = None
    order_id: UUID | None = None


METADATA_BY_KIND: dict[str, type[_Metadata]] = {
    "message": MessageMetadata,
    "call": CallMetadata,
    "meeting": MeetingMetadata,
    "visit": MeetingMetadata,
    "note": NoteMetadata,
    "mention": SocialMetadata,
    "comment": SocialMetadata,
    "like": SocialMetadata,
    "share": SocialMetadata,
    "page_view": PageViewMetadata,
    "click": ClickMetadata,
    "search": SearchMetadata,
    "email_delivered": EmailEventMetadata,
    "email_opened": EmailEventMetadata,
    "email_clicked": EmailEventMetadata,
    "email_bounced": EmailEventMetadata,
    "feedback": FeedbackMetadata,
    "complaint": FeedbackMetadata,
}

Metadata = (
    MessageMetadata
    | CallMetadata
    | MeetingMetadata
    | NoteMetadata
    | SocialMetadata
    | PageViewMetadata
    | ClickMetadata
    | SearchMetadata
    | EmailEventMetadata
    | FeedbackMetadata
)

_EXAMPLE_CALL: dict[str, Any] = {
    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "channel": "call",
    "kind": "call",
    "direction": "inbound",
    "occurred_at": "2026-11-23T09:30:00+01:00",
    "agent_id": "agent-17",
    "subject": "Delivery date",
    "summary": "Asked about the delivery date of order 1042.",
    "metadata": {"duration_s": 240, "outcome": "answered", "from_number": "+8613812345678"},
}
_EXAMPLE_PAGE_VIEW: dict[str, Any] = {
    "event_id": "9b2f6c1e-web-000001",
    "customer_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "channel": "web",
    "kind": "page_view",
    "occurred_at": "2026-11-23T09:31:12Z",
    "metadata": {"url": "https://shop.example.com/p/green-tea", "product": "SKU-1042"},
}


class InteractionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [_EXAMPLE_CALL, _EXAMPLE_PAGE_VIEW]}
    )

    event_id: EventId | None = Field(
        default=None,
        description="Your own unique id of this event (a UUID is best). An event id already "
        "stored for the same source is not stored again: retries are safe.",
    )
    customer_id: UUID = Field(description="The customer this touchpoint belongs to.")
    channel: Channel = Field(description="Where it happened.")
    kind: Kind = Field(description="What happened; selects the shape of `metadata`.")
    direction: Direction | None = Field(
        default=None, description="Who started it; omit when it has no direction (a note)."
    )
    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="When it happened, with a UTC offset; defaults to the time of the request. "
        "Not before 1970 and at most 5 minutes in the future.",
    )
    agent_id: Text200 | None = Field(default=None, description="The employee who handled it.")
    subject: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    summary: str | None = Field(default=None, min_length=1, max_length=4000)
    metadata: Metadata | None = Field(
        default=None,
        validate_default=True,
        description="Typed details of the kind: `message` → MessageMetadata, `call` → "
        "CallMetadata, `meeting`/`visit` → MeetingMetadata, `note` → NoteMetadata, "
        "`mention`/`comment`/`like`/`share` → SocialMetadata, `page_view` → "
        "PageViewMetadata (url required), `click` → ClickMetadata, `search` → SearchMetadata "
        "(term required), `email_*` → EmailEventMetadata, `feedback`/`complaint` → "
        "FeedbackMetadata. Unknown fields are refused.",
    )

    @field_validator("metadata", mode="wrap")
    @classmethod
    def _typed_by_kind(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> _Metadata | None:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid: that error says it all
            return None
        model = METADATA_BY_KIND[kind]
        if isinstance(value, model):
            return value
        # Raised ValidationErrors keep their locations under ``metadata``.
        return model.model_validate({} if value is None else value)

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value < EARLIEST:
            raise ValueError("must not be before 1970-01-01T00:00:00Z")
        if value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValueError("must not be more than 5 minutes in the future")
        return value

    @field_validator("kind")
    @classmethod
    def _kind_fits_channel(cls, kind: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        allowed = CHANNELS_BY_KIND[kind]
        if channel is not None and allowed is not None and channel not in allowed:
            raise ValueError(f"a {kind} happens on {', '.join(sorted(allowed))}, not on {channel}")
        return kind


class InteractionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    channel: str
    kind: str
    direction: str | None
    occurred_at: datetime
    agent_id: str | None = None
    subject: str | None = None
    summary: str | None
    metadata: dict[str, Any] = Field(
        default_factory=dict, validation_alias="details", description="See InteractionCreate."
    )
    source: str = "api"
    event_id: str | None = None
    created_at: datetime


# --- batch ingest --------------------------------------------------------------------------
MAX_BATCH = 1000


class BatchRequest(BaseModel):
    """Up to 1,000 events; each one is validated and stored on its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"source": "web-tracker", "events": [_EXAMPLE_PAGE_VIEW]}]},
    )

    source: Source = Field(
        default="api",
        description="Who sends these events (lower case, e.g. `web-tracker`); event ids are "
        "unique per source.",
    )
    # Items stay raw here: a bad item must not fail the whole request, so each is validated
    # on its own (see InteractionCreate for their shape).
    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="The events, each shaped like the body of `POST /interactions`.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/InteractionCreate"}},
    )


class ItemProblem(BaseModel):
    """Why one item was not stored: RFC 9457 fields, pointers relative to the batch body."""

    type: str = Field(examples=["/problems/validation-failed", "/problems/unknown-customer"])
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    detail: str
    errors: list[dict[str, Any]] | None = None


class ItemResult(BaseModel):
    index: int = Field(description="Position of the item in `events`.")
    status: Literal["stored", "duplicate", "error"]
    id: UUID | None = Field(
        default=None, description="The interaction (for a duplicate: the one stored before)."
    )
    problem: ItemProblem | None = None


class BatchResult(BaseModel):
    stored: int
    duplicates: int
    errors: int
    results: list[ItemResult] = Field(description="One per item, in the order sent.")
