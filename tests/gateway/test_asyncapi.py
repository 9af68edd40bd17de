"""The gateway serves the AsyncAPI document generated from the event models."""

from __future__ import annotations

import pytest

from gateway.config import Settings
from gateway.main import create_app
from shared.events import TOPICS, registered_events
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_asyncapi_document_lists_every_topic_and_event(make_settings):
    async with api_client(create_app(make_settings(Settings))) as client:
        response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"] == "3.0.0"
    assert {c["address"] for c in document["channels"].values()} == set(TOPICS)
    titles = {m["title"] for m in document["components"]["messages"].values()}
    assert titles == {e.event_type for e in registered_events()}
    placed = document["components"]["schemas"]["OrderPlaced"]
    assert placed["properties"]["total"]["type"] == "string"  # money is never a float
    assert "customer_id" in placed["required"]
