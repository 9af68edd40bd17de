"""The recipient projection of campaigns, from customer360's events (never its tables):
names, first e-mail and phone, marketing consent per channel, timezone, locale, tags,
lifecycle stage and custom fields. Erasures and merges are honoured like the other
projections of this service."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.campaign import service
from services.interactions.campaign.repository import CampaignRepository, RecipientRepository
from services.interactions.careplan.repository import ProjectionRepository
from services.interactions.config import Settings
from shared.events import (
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    Envelope,
    OrderPlaced,
    SegmentEntered,
    TaskDue,
)

#: Consent keys of the profile → the projection's columns (``phone`` is what partner
#: messaging-app campaigns, channel ``webhook``, need).
_CONSENT_COLUMNS = {"email": "consent_email", "sms": "consent_sms", "phone": "consent_phone"}


def _first(values: object) -> str | None:
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def _text(value: object, limit: int) -> str | None:
    return str(value)[:limit] if value is not None else None


async def on_customer_created(session: AsyncSession, event: CustomerCreated, _: Envelope) -> None:
    values: dict[str, Any] = {
        "display_name": event.display_name[:300],
        "email": _first(event.emails),
        "phone": _first(event.phones),
        "timezone": await ProjectionRepository(session).known_timezone(event.timezone),
        "locale": _text(event.locale, 35),
        "lifecycle_stage": _text(event.lifecycle_stage, 30),
        "tags": list(event.tags),
        "custom_fields": dict(event.custom_fields),
    }
    for key, column in _CONSENT_COLUMNS.items():
        state = event.consent.get(key)
        values[column] = bool(state and state.granted)
    await RecipientRepository(session).upsert(event.customer_id, values)


async def on_customer_updated(session: AsyncSession, event: CustomerUpdated, _: Envelope) -> None:
    changes = event.changes
    values: dict[str, Any] = {}
    if "display_name" in changes:
        values["display_name"] = _text(changes["display_name"], 300)
    if "emails" in changes:
        values["email"] = _first(changes["emails"])
    if "phones" in changes:
        values["phone"] = _first(changes["phones"])
    if "timezone" in changes:
        tz = changes["timezone"]
        values["timezone"] = await ProjectionRepository(session).known_timezone(
            tz if isinstance(tz, str) else None
        )
    if "locale" in changes:
        values["locale"] = _text(changes["locale"], 35)
    if "lifecycle_stage" in changes:
        values["lifecycle_stage"] = _text(changes["lifecycle_stage"], 30)
    if "tags" in changes:
        tags = changes["tags"]
        values["tags"] = [str(t) for t in tags] if isinstance(tags, list) else []
    if "custom_fields" in changes:
        fields = changes["custom_fields"]
        values["custom_fields"] = dict(fields) if isinstance(fields, dict) else {}
    if "consent" in changes and isinstance(changes["consent"], dict):
        for key, column in _CONSENT_COLUMNS.items():
            state = changes["consent"].get(key)
            if isinstance(state, dict) and "granted" in state:
                values[column] = bool(state["granted"])
    if values:
        await RecipientRepository(session).upsert(event.customer_id, values)


async def on_consent_changed(
    session: AsyncSession, event: CustomerConsentChanged, _: Envelope
) -> None:
    column = _CONSENT_COLUMNS.get(event.channel)
    if column is not None:
        await RecipientRepository(session).upsert(event.customer_id, {column: event.granted})


_settings: Settings | None = None


def use_settings(settings: Settings) -> None:
    """The caps and quiet hours triggered campaigns apply (the app factory calls this)."""
    global _settings
    _settings = settings


def current_settings() -> Settings:
    return _settings or Settings()


async def on_segment_entered(session: AsyncSession, event: SegmentEntered, _: Envelope) -> None:
    await service.on_trigger(
        session, event.segment_id, event.customer_id, current_settings(), datetime.now(UTC)
    )


async def on_order_placed(session: AsyncSession, event: OrderPlaced, _: Envelope) -> None:
    """``order_placed`` campaigns: a message ``delay_days`` after the order."""
    await service.on_order_placed(
        session,
        event.customer_id,
        event.order_id,
        event.placed_at,
        current_settings(),
        datetime.now(UTC),
    )


async def on_tasks_due(session: AsyncSession, events: Sequence[TaskDue]) -> int:
    """``task_due`` campaigns; returns how many messages were written. Not a subscription:
    TaskDue is this service's own event, and the care-plan scheduler calls this in the
    transaction that announces the tasks, rather than this service consuming its whole
    interaction topic for it."""
    if not events or not await CampaignRepository(session).any_started("task_due"):
        return 0
    settings, now = current_settings(), datetime.now(UTC)
    written = 0
    for event in events:
        written += await service.on_task_due(
            session, event.customer_id, event.task_id, event.rule_type, settings, now
        )
    return written


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    await RecipientRepository(session).merge(event.merged_id, event.customer_id)


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    await RecipientRepository(session).forget(event.customer_id)
