"""Partner webhook payloads → interactions: the formats accepted, and their mapping.

The gateway stores a verified webhook and publishes its raw body as ``WebhookReceived``;
the source's *format* (setting ``INTERACTIONS_WEBHOOK_FORMATS``, source name → format) says
how to read it. Three formats, one per family of partner:

``email-events`` — e-mail platform events, SendGrid's Event Webhook shape: a JSON array (or
``{"events": [...]}``) of ``{"event", "email", "timestamp" (Unix seconds), "sg_event_id",
"sg_message_id", "url", "reason", "type", "marketing_campaign_name" | "category"}``.
``delivered`` → ``email_delivered``, ``open`` → ``email_opened``, ``click`` →
``email_clicked`` (with ``url``), ``bounce`` → ``email_bounced`` (``type`` ``blocked`` is a
soft bounce, else hard). Other events (processed, deferred, dropped…) are ignored. The
recipient must be a known customer (the platform mailed them; nobody new is created).

``conversations`` — chat/call platform events: one object, or ``{"events": [...]}``, of
``{"id", "type": "call" | "chat" | "sms", "direction": "inbound" | "outbound",
"customer": {"email", "phone", "name"}, "agent", "started_at" (ISO 8601 with offset),
"duration_s", "status": "answered" | "missed" | "voicemail" | "busy" | "failed", "subject",
"summary", "recording_url"}``. A call becomes a ``call``; a chat or SMS a ``message``. An
unknown e-mail/phone becomes a new prospect (an inbound call from a new number is a lead).

``web-tracking`` — Segment's spec: one call, or ``{"batch": [...]}``, of ``{"type": "page" |
"screen" | "track", "messageId", "timestamp", "userId", "context": {"traits": {"email",
"phone"}, "page": {"url", "title", "referrer"}}, "properties": {...}, "event", "name"}``.
``page`` → ``page_view`` on web (``properties.url`` or ``context.page.url``); ``screen`` →
``page_view`` on app; ``track`` ``Products Searched`` → ``search`` (``properties.query``),
``Product Clicked`` → ``click``, ``Product Viewed`` → ``page_view`` (``product_id`` or
``sku`` as the product). Calls without an e-mail or phone (anonymous visitors) and other
``track`` events are ignored. An unknown e-mail becomes a new prospect.

Each mapped event keeps the partner's own event id (``sg_event_id``, ``id``,
``messageId``; else ``<webhook-id>#<position>``) as its ``event_id`` under the webhook's
source, so a redelivered or replayed webhook stores nothing new.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from shared.events import WebhookReceived

__all__ = [
    "FORMATS",
    "CampaignEmailEvent",
    "Format",
    "Mapped",
    "PayloadError",
    "campaign_email_events",
    "map_webhook",
]

Format = Literal["email-events", "conversations", "web-tracking"]
FORMATS: tuple[Format, ...] = ("email-events", "conversations", "web-tracking")


class PayloadError(ValueError):
    """The webhook's body cannot be read in its source's format."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """One partner event as an interaction to store, before its customer is known."""

    identity: dict[str, str]  # {"email": …} or {"phone": …}: how to find the customer
    create: bool  # whether an unknown identity becomes a new prospect
    item: dict[str, Any] = field(default_factory=dict)  # InteractionCreate without customer_id
    display_name: str | None = None


@dataclass(slots=True)
class Mapping:
    mapped: list[Mapped] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why, one per event left out


def _body(event: WebhookReceived) -> Any:
    raw = event.body
    try:
        text = base64.b64decode(raw).decode() if event.body_encoding == "base64" else raw
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the body is not JSON ({exc.__class__.__name__})") from None


def _listed(body: Any, key: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        inner = body.get(key)
        return inner if isinstance(inner, list) else [body]
    raise PayloadError("the body is neither an object nor an array")


def _str(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _unix(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return "0001-01-01T00:00:00+00:00"  # absurd: refused by validation, reported


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- e-mail platform events (SendGrid shape) ------------------------------------------------
_EMAIL_KINDS = {
    "delivered": "email_delivered",
    "open": "email_opened",
    "click": "email_clicked",
    "bounce": "email_bounced",
}


def _email_events(body: Any, webhook_id: str) -> Mapping:
    result = Mapping()
    for position, raw in enumerate(_listed(body, "events")):
        if not isinstance(raw, dict):
            result.ignored.append(f"#{position}: not an object")
            continue
        kind = _EMAIL_KINDS.get(raw.get("event"))  # type: ignore[arg-type]
        email = _str(raw.get("email"), 320)
        if kind is None:
            result.ignored.append(f"#{position}: event {raw.get('event')!r} is not mapped")
            continue
        if email is None:
            result.ignored.append(f"#{position}: no recipient e-mail")
            continue
        campaign = raw.get("marketing_campaign_name") or raw.get("category")
        if isinstance(campaign, list):
            campaign = campaign[0] if campaign else None
        metadata = _compact(
            {
                "message_id": _str(raw.get("sg_message_id"), 200),
                "campaign": _str(campaign, 200),
                "url": _str(raw.get("url"), 2048) if kind == "email_clicked" else None,
                "bounce_type": (
                    ("soft" if raw.get("type") == "blocked" else "hard")
                    if kind == "email_bounced"
                    else None
                ),
                "reason": _str(raw.get("reason"), 1000),
            }
        )
        result.mapped.append(
            Mapped(
                identity={"email": email},
                create=False,
                item=_compact(
                    {
                        "event_id": _str(raw.get("sg_event_id"), 200) or f"{webhook_id}#{position}",
                        "channel": "email",
                        "kind": kind,
                        "direction": "outbound",
                        "occurred_at": _unix(raw.get("timestamp")),
                        "metadata": metadata,
                    }
                ),
            )
        )
    return result


# --- chat/call platform events ----------------------------------------------------------------
def _conversations(body: Any, webhook_id: str) -> Mapping:
    result = Mapping()
    for position, raw in enumerate(_listed(body, "events")):
        if not isinstance(raw, dict):
            result.ignored.append(f"#{position}: not an object")
            continue
        kind_of = {"call": ("call", "call"), "chat": ("chat", "message"), "sms": ("sms", "message")}
        channel_kind = kind_of.get(raw.get("type"))  # type: ignore[arg-type]
        customer = _object(raw.get("customer"))
        identity = _compact(
            {"email": _str(customer.get("email"), 320), "phone": _str(customer.get("phone"), 40)}
        )
        if channel_kind is None:
            result.ignored.append(f"#{position}: type {raw.get('type')!r} is not mapped")
            continue
        if not identity:
            result.ignored.append(f"#{position}: no customer e-mail or phone")
            continue
        channel, kind = channel_kind
        if kind == "call":
            metadata = _compact(
                {
                    "duration_s": raw.get("duration_s"),
                    "outcome": raw.get("status"),
                    "recording_url": raw.get("recording_url"),
                }
            )
        else:
            metadata = _compact({"thread_id": _str(raw.get("thread_id"), 200)})
        result.mapped.append(
            Mapped(
                identity=identity,
                create=True,
                display_name=_str(customer.get("name"), 300),
                item=_compact(
                    {
                        "event_id": _str(raw.get("id"), 200) or f"{webhook_id}#{position}",
                        "channel": channel,
                        "kind": kind,
                        "direction": raw.get("direction"),
                        "occurred_at": raw.get("started_at"),
                        "agent_id": raw.get("agent"),
                        "subject": raw.get("subject"),
                        "summary": raw.get("summary"),
                        "metadata": metadata,
                    }
                ),
            )
        )
    return result


# --- web tracking (Segment spec) --------------------------------------------------------------
def _traits(raw: dict[str, Any], context: dict[str, Any], properties: dict[str, Any]) -> Any:
    """Who it was: ``context.traits``, else ``traits``, else the properties themselves."""
    for candidate in (context.get("traits"), raw.get("traits"), properties):
        if isinstance(candidate, dict) and (candidate.get("email") or candidate.get("phone")):
            return candidate
    return {}


def _web_tracking(body: Any, webhook_id: str) -> Mapping:
    result = Mapping()
    for position, raw in enumerate(_listed(body, "batch")):
        if not isinstance(raw, dict):
            result.ignored.append(f"#{position}: not an object")
            continue
        properties, context = _object(raw.get("properties")), _object(raw.get("context"))
        page = _object(context.get("page"))
        product = _str(properties.get("product_id") or properties.get("sku"), 200)
        call_type, name = raw.get("type"), raw.get("event")
        channel, kind, metadata = "web", None, dict[str, Any]()
        if call_type == "page":
            kind = "page_view"
            metadata = {
                "url": properties.get("url") or page.get("url"),
                "title": properties.get("title") or page.get("title"),
                "referrer": properties.get("referrer") or page.get("referrer"),
                "product": product,
            }
        elif call_type == "screen":
            channel, kind = "app", "page_view"
            metadata = {"url": f"app://{raw.get('name') or 'screen'}", "title": raw.get("name")}
        elif call_type == "track" and name == "Products Searched":
            kind, metadata = "search", {"term": properties.get("query")}
        elif call_type == "track" and name == "Product Clicked":
            kind, metadata = "click", {"url": properties.get("url"), "product": product}
        elif call_type == "track" and name == "Product Viewed":
            kind = "page_view"
            metadata = {"url": properties.get("url") or page.get("url"), "product": product}
        if kind is None:
            result.ignored.append(f"#{position}: {call_type} {name or ''} is not mapped".strip())
            continue
        traits = _traits(raw, context, properties)
        identity = _compact(
            {"email": _str(traits.get("email"), 320), "phone": _str(traits.get("phone"), 40)}
        )
        if not identity:
            result.ignored.append(f"#{position}: anonymous (no e-mail or phone)")
            continue
        result.mapped.append(
            Mapped(
                identity=identity,
                create=True,
                display_name=_str(traits.get("name"), 300),
                item=_compact(
                    {
                        "event_id": _str(raw.get("messageId"), 200) or f"{webhook_id}#{position}",
                        "channel": channel,
                        "kind": kind,
                        "occurred_at": raw.get("timestamp"),
                        "metadata": _compact(metadata),
                    }
                ),
            )
        )
    return result


_MAPPERS = {
    "email-events": _email_events,
    "conversations": _conversations,
    "web-tracking": _web_tracking,
}


_UUID_IN = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class CampaignEmailEvent:
    """An e-mail platform event about a campaign message of this service."""

    message_id: UUID
    event: Literal["delivered", "bounce", "open", "click"]
    at: datetime | None


def campaign_email_events(event: WebhookReceived) -> list[CampaignEmailEvent]:
    """The ``email-events`` items that name a campaign message: by a ``rapport_message_id``
    custom argument (SendGrid puts those at the top level of each event), or by
    ``smtp-id``, the ``Message-ID`` campaign e-mail is sent with (``<id@domain>``). The
    caller has already read the body (a :class:`PayloadError` is not expected here)."""
    found: list[CampaignEmailEvent] = []
    for raw in _listed(_body(event), "events"):
        if not isinstance(raw, dict) or raw.get("event") not in _EMAIL_KINDS:
            continue
        candidate = raw.get("rapport_message_id") or raw.get("smtp-id")
        match = _UUID_IN.search(candidate) if isinstance(candidate, str) else None
        if match is None:
            continue
        when = _unix(raw.get("timestamp"))
        found.append(
            CampaignEmailEvent(
                UUID(match.group(0)),
                raw["event"],
                datetime.fromisoformat(when) if when else None,
            )
        )
    return found


def map_webhook(event: WebhookReceived, fmt: Format) -> Mapping:
    """The interactions a webhook of ``fmt`` carries, and what it carries that is ignored.
    Raises :class:`PayloadError` when the body cannot be read at all."""
    return _MAPPERS[fmt](_body(event), event.webhook_id)
