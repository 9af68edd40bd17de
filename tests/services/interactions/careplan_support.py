"""Shared by the task and care-plan tests: a controllable clock, event delivery through the
service's real subscriptions, and reading queued events from the outbox."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text

from services.interactions.subscriptions import subscriptions
from shared.db import Database
from shared.events import Envelope, Event


class Clock:
    """A controllable ``now()`` for the schedulers."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def deliver(database: Database, *events: Event) -> None:
    """Apply events as the consumer would: every subscribed handler, one transaction each."""
    for event in events:
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None, event.event_type
        async with database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/rapport/test"))


async def outbox_events(database: Database, key: str, ce_type: str) -> list[dict[str, Any]]:
    async with database.session() as session:
        rows = (
            await session.execute(
                text("SELECT headers, payload FROM interactions.outbox WHERE key = :k ORDER BY id"),
                {"k": key},
            )
        ).all()
    return [json.loads(p) for h, p in rows if dict(h)["ce_type"] == ce_type]
