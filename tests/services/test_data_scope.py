"""Every service applies the principal's data scope inside its queries: a sales rep of team
A never sees team B's customers' interactions or features."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.interactions.config import Settings as InteractionsSettings
from services.interactions.main import create_app as interactions_app
from services.interactions.subscriptions import subscriptions as interactions_subscriptions
from services.segmentation.config import Settings as SegmentationSettings
from services.segmentation.main import create_app as segmentation_app
from services.segmentation.subscriptions import subscriptions as segmentation_subscriptions
from shared.events import CustomerCreated, CustomerUpdated, Envelope
from shared.messaging import Subscriptions
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 11, 1, tzinfo=UTC)


async def apply(app, subscriptions: Subscriptions, *events) -> None:
    for event in events:
        handler = subscriptions.handler_for(event.event_type)
        assert handler is not None
        async with app.state.database.session() as session:
            await handler(session, event, Envelope.wrap(event, source="/test"))


def customers() -> dict[str, tuple[uuid.UUID, str, str]]:
    return {
        name: (uuid.uuid4(), name, team)
        for name, team in (("ann", "north"), ("bob", "north"), ("cid", "south"))
    }


def created(customer_id: uuid.UUID, owner: str, team: str) -> CustomerCreated:
    return CustomerCreated(
        customer_id=customer_id, display_name=owner, owner_id=owner, team_id=team, created_at=NOW
    )


async def test_interactions_lists_only_the_customers_in_scope(make_settings):
    app = interactions_app(make_settings(InteractionsSettings))
    people = customers()
    async with api_client(app) as client:
        await apply(app, interactions_subscriptions, *(created(*p) for p in people.values()))
        for cid, _, _ in people.values():
            response = await client.post(
                "/interactions",
                json={"customer_id": str(cid), "channel": "email", "kind": "note"},
                headers=bearer("interactions:write"),
            )
            assert response.status_code == 201, response.text
        by_id = {str(cid): name for cid, name, _ in people.values()}

        async def visible(**token) -> set[str]:
            page = await client.get(
                "/interactions", params={"limit": 200}, headers=bearer("interactions:read", **token)
            )
            return {
                by_id[i["customer_id"]] for i in page.json()["items"] if i["customer_id"] in by_id
            }

        assert await visible(subject="ann", scope_mode="own") == {"ann"}
        assert await visible(subject="x", scope_mode="team", team="north") == {"ann", "bob"}
        assert await visible(subject="x", scope_mode="all") == {"ann", "bob", "cid"}

        # An ownership change moves the customer into the new owner's scope.
        ann = people["ann"][0]
        await apply(
            app,
            interactions_subscriptions,
            CustomerUpdated(customer_id=ann, changes={"owner_id": "bob"}, updated_at=NOW),
        )
        assert await visible(subject="bob", scope_mode="own") == {"ann", "bob"}


async def test_segmentation_features_are_404_outside_the_scope(make_settings):
    app = segmentation_app(make_settings(SegmentationSettings))
    people = customers()
    async with api_client(app) as client:
        await apply(app, segmentation_subscriptions, *(created(*p) for p in people.values()))
        cid = people["cid"][0]
        north = bearer("segments:read", subject="ann", scope_mode="team", team="north")
        south = bearer("segments:read", subject="zed", scope_mode="team", team="south")
        assert (await client.get(f"/customers/{cid}/features", headers=north)).status_code == 404
        response = await client.get(f"/customers/{cid}/features", headers=south)
        assert response.status_code == 200
        assert response.json()["display_name"] == "cid"
