"""Expired idempotency keys and inbox rows are deleted; live ones stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from services.customer360.config import Settings
from shared.db import Database
from shared.housekeeping import Housekeeping

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_expired_rows_go_and_live_ones_stay(make_settings):
    settings = make_settings(Settings)
    database = Database(settings.database_url, schema="customer360")
    tag = uuid.uuid4().hex
    old_event, new_event = uuid.uuid4(), uuid.uuid4()
    try:
        async with database.session() as session:
            for key, age in (
                (f"old-{tag}", timedelta(hours=25)),
                (f"new-{tag}", timedelta(hours=1)),
            ):
                await session.execute(
                    text(
                        "INSERT INTO customer360.idempotency_key "
                        "(principal, key, operation, fingerprint, created_at) "
                        "VALUES ('hk', :k, 'op', 'f', now() - CAST(:age AS interval))"
                    ),
                    {"k": key, "age": age},
                )
            for event_id, age in ((old_event, timedelta(days=15)), (new_event, timedelta(days=1))):
                await session.execute(
                    text(
                        "INSERT INTO customer360.inbox (consumer, event_id, event_type, "
                        "processed_at) VALUES ('hk', :e, 't', now() - CAST(:age AS interval))"
                    ),
                    {"e": event_id, "age": age},
                )
        deleted = await Housekeeping(database.engine, "customer360").run_once()
        assert deleted["idempotency_key"] >= 1
        assert deleted["inbox"] >= 1
        async with database.session() as session:
            keys = set(
                await session.scalars(
                    text("SELECT key FROM customer360.idempotency_key WHERE principal = 'hk'")
                )
            )
            events = set(
                await session.scalars(
                    text("SELECT event_id FROM customer360.inbox WHERE consumer = 'hk'")
                )
            )
        assert keys == {f"new-{tag}"}
        assert events == {new_event}
    finally:
        async with database.session() as session:
            await session.execute(
                text("DELETE FROM customer360.idempotency_key WHERE principal = 'hk'")
            )
            await session.execute(text("DELETE FROM customer360.inbox WHERE consumer = 'hk'"))
        await database.dispose()
