"""The outbox gauges are sampled even while the relay cannot send — when they matter."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from services.customer360.config import Settings
from services.customer360.main import create_app
from shared import metrics
from shared.db import Database
from shared.messaging import OutboxRelay, Producer
from tests.support import api_client, bearer

WRITE = bearer("customers:read", "customers:write")


@pytest.mark.asyncio(loop_scope="session")
async def test_outbox_backlog_and_age_are_reported_while_the_broker_is_down(
    new_database, make_settings
) -> None:
    url = await asyncio.to_thread(new_database, migrated=True)
    app = create_app(make_settings(Settings, database_url=url))
    async with api_client(app, rollback=False) as client:
        for name in ("王芳", "Marie Curie", "周杰"):
            response = await client.post("/customers", json={"display_name": name}, headers=WRITE)
            assert response.status_code == 201
    await asyncio.sleep(1.1)  # so the oldest row is more than a second old

    # Nothing listens on port 9: the relay keeps failing to reach the broker.
    settings = make_settings(Settings, database_url=url, kafka_bootstrap_servers="127.0.0.1:9")
    database = Database(url, schema="customer360")
    relay = OutboxRelay(
        database.engine, Producer(settings), schema="customer360", sample_interval=0.1
    )
    gauge = metrics.OUTBOX_BACKLOG.labels("customer360")
    gauge.set(-1)
    relay.start()
    try:
        async with asyncio.timeout(20):
            while gauge._value.get() != 3:
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await database.dispose()
    age = metrics.OUTBOX_OLDEST_AGE.labels("customer360")._value.get()
    assert 1.0 < age < 60
    exposed = generate_latest().decode()
    assert 'rapport_outbox_backlog{schema="customer360"} 3.0' in exposed
