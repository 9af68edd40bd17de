import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from services.segmentation.config import Settings
from services.segmentation.features import handlers
from services.segmentation.main import create_app
from services.segmentation.models import CustomerEvent, CustomerFeatures
from services.segmentation.subscriptions import subscriptions
from shared.errors import PROBLEM_JSON
from shared.events import (
    BehaviourRecorded,
    ConsentState,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerUpdated,
    Envelope,
    Event,
    InteractionRecorded,
    OrderPlaced,
    OrderStatusChanged,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)
from tests.support import api_client, bearer

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # api_client runs the app's lifespan and binds its database to one transaction that is
    # rolled back at the end, so what the handlers write below never persists.
    async with api_client(app) as c:
        yield c


async def deliver(app: FastAPI, event: Event) -> None:
    """Apply ``event`` as the consumer runner would: its registered handler, in one unit of
    work (without the inbox claim, which the runner's own tests cover)."""
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None, f"segmentation does not subscribe to {event.event_type}"
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))


async def features(client: httpx.AsyncClient, customer_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(
        f"/customers/{customer_id}/features", headers=bearer("segments:read")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def order(customer_id: uuid.UUID, total: str, currency: str = "EUR", **kw: Any) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=kw.pop("order_id", uuid.uuid4()),
        total=Decimal(total),
        currency=currency,
        channel="web",
        placed_at=kw.pop("placed_at", T0),
    )


def interaction(customer_id: uuid.UUID, occurred_at: datetime) -> InteractionRecorded:
    return InteractionRecorded(
        customer_id=customer_id,
        interaction_id=uuid.uuid4(),
        channel="email",
        kind="message",
        direction="outbound",
        occurred_at=occurred_at,
    )


def created(customer_id: uuid.UUID, display_name: str = "Ada Lovelace") -> CustomerCreated:
    return CustomerCreated(customer_id=customer_id, display_name=display_name, created_at=T0)


class TestSubscriptions:
    def test_routes_each_consumed_event_to_its_handler(self) -> None:
        assert handlers.on_customer_created in subscriptions.handlers(CustomerCreated.event_type)
        assert handlers.on_order_placed in subscriptions.handlers(OrderPlaced.event_type)
        assert subscriptions.handlers(InteractionRecorded.event_type) == (
            handlers.on_interaction_recorded,
        )
        assert handlers.on_customer_erased in subscriptions.handlers(CustomerErased.event_type)
        assert subscriptions.topics == [
            "rapport.customer.v1",
            "rapport.interaction.v1",
            "rapport.order.v1",
        ]


class TestCustomerCreatedHandler:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_starts_the_features_of_a_new_customer(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()

        await deliver(app, created(customer_id))

        got = await features(client, customer_id)
        assert got["customer_id"] == str(customer_id)
        assert got["display_name"] == "Ada Lovelace"
        assert got["order_count"] == 0
        assert got["total_spent"] == {}
        assert got["last_order_at"] is None
        assert got["interaction_count"] == 0
        assert got["last_interaction_at"] is None

    @pytest.mark.asyncio(loop_scope="session")
    async def test_keeps_orders_that_arrived_before_the_customer(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()

        await deliver(app, order(customer_id, "10.00"))
        await deliver(app, created(customer_id, "Grace Hopper"))

        got = await features(client, customer_id)
        assert got["display_name"] == "Grace Hopper"
        assert got["order_count"] == 1
        assert got["total_spent"] == {"EUR": "10.00"}


class TestOrderPlacedHandler:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_counts_orders_and_sums_them_exactly_per_currency(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        await deliver(app, created(customer_id))

        await deliver(app, order(customer_id, "0.10"))
        await deliver(app, order(customer_id, "0.20"))
        await deliver(app, order(customer_id, "9.99", "USD"))

        got = await features(client, customer_id)
        assert got["order_count"] == 3
        assert got["total_spent"] == {"EUR": "0.30", "USD": "9.99"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_counts_the_same_order_twice_when_the_handler_runs_twice(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        # Deduplication of redelivered events is the consumer runner's job (the inbox claim
        # in the same transaction). The handler must simply apply what it is given: two
        # deliveries that reach it are two applications, so it counts, it does not recompute.
        customer_id = uuid.uuid4()
        placed = order(customer_id, "25.00")

        await deliver(app, placed)
        await deliver(app, placed)

        got = await features(client, customer_id)
        assert got["order_count"] == 2
        assert got["total_spent"] == {"EUR": "50.00"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_stores_totals_in_plain_decimal_notation(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()

        await deliver(app, order(customer_id, "1E+2", "CHF"))

        got = await features(client, customer_id)
        assert got["total_spent"] == {"CHF": "100"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_keeps_the_latest_order_time_when_orders_arrive_out_of_order(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        later = T0 + timedelta(days=3)

        await deliver(app, order(customer_id, "1.00", placed_at=later))
        await deliver(app, order(customer_id, "1.00", placed_at=T0))

        got = await features(client, customer_id)
        assert datetime.fromisoformat(got["last_order_at"]) == later
        assert got["display_name"] is None


class TestOrderStatusChangedHandler:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_a_cancelled_or_refunded_order_stops_counting_and_a_reopened_one_counts_again(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        first, big, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await deliver(app, order(customer_id, "20.00", order_id=first, placed_at=T0))
        await deliver(app, order(customer_id, "150.00", order_id=big, placed_at=T0 + DAY))
        await deliver(app, order(customer_id, "9.99", "USD", order_id=last, placed_at=T0 + 2 * DAY))

        await deliver(app, status(customer_id, big, "cancelled", "placed", T0 + 3 * DAY))
        await deliver(app, status(customer_id, last, "refunded", "paid", T0 + 3 * DAY))
        got = await features(client, customer_id)
        assert got["order_count"] == 1
        assert got["total_spent"] == {"EUR": "20.00", "USD": "0.00"}
        assert datetime.fromisoformat(got["last_order_at"]) == T0  # the only order that counts

        # A late, older status change of the cancelled order changes nothing …
        await deliver(app, status(customer_id, big, "cancelled", "placed", T0 + 2 * DAY))
        # … nor a second change between statuses that do not count.
        await deliver(app, status(customer_id, big, "refunded", "cancelled", T0 + 4 * DAY))
        assert (await features(client, customer_id))["order_count"] == 1

        await deliver(app, status(customer_id, big, "placed", "refunded", T0 + 5 * DAY))
        got = await features(client, customer_id)
        assert got["order_count"] == 2
        assert got["total_spent"] == {"EUR": "170.00", "USD": "0.00"}
        assert datetime.fromisoformat(got["last_order_at"]) == T0 + DAY
        assert datetime.fromisoformat(got["first_order_at"]) == T0

    @pytest.mark.asyncio(loop_scope="session")
    async def test_a_status_change_of_an_order_never_seen_placed_changes_no_count(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        await deliver(app, order(customer_id, "20.00"))
        await deliver(app, status(customer_id, uuid.uuid4(), "cancelled", "placed", T0 + DAY))
        got = await features(client, customer_id)
        assert (got["order_count"], got["total_spent"]) == (1, {"EUR": "20.00"})


DAY = timedelta(days=1)


def status(
    customer_id: uuid.UUID, order_id: uuid.UUID, to: str, was: str, at: datetime
) -> OrderStatusChanged:
    return OrderStatusChanged(
        customer_id=customer_id,
        order_id=order_id,
        status=to,
        previous_status=was,
        changed_at=at,
    )


class TestInteractionRecordedHandler:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_counts_interactions_and_keeps_the_latest_time(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        latest = T0 + timedelta(hours=5)

        await deliver(app, interaction(customer_id, latest))
        await deliver(app, interaction(customer_id, T0))

        got = await features(client, customer_id)
        assert got["interaction_count"] == 2
        assert datetime.fromisoformat(got["last_interaction_at"]) == latest
        assert got["order_count"] == 0

    @pytest.mark.asyncio(loop_scope="session")
    async def test_coalesced_behaviour_counts_each_page_view(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        await deliver(app, interaction(customer_id, T0))
        await deliver(
            app,
            BehaviourRecorded(
                customer_id=customer_id,
                counts={"page_view": 3, "search": 1},
                channels=["web"],
                first_occurred_at=T0 + timedelta(minutes=1),
                last_occurred_at=T0 + timedelta(minutes=9),
                last_channel="web",
            ),
        )
        got = await features(client, customer_id)
        assert got["interaction_count"] == 5
        assert datetime.fromisoformat(got["last_interaction_at"]) == T0 + timedelta(minutes=9)
        async with app.state.database.session() as session:
            logged = (
                await session.scalars(
                    select(CustomerEvent.attrs).where(CustomerEvent.customer_id == customer_id)
                )
            ).all()
        assert sorted(a["kind"] for a in logged) == [
            "message",
            "page_view",
            "page_view",
            "page_view",
            "search",
        ]


class TestCustomerErasedHandler:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_forgets_everything_about_the_customer(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        await deliver(app, created(customer_id))
        await deliver(app, order(customer_id, "5.00"))

        await deliver(app, CustomerErased(customer_id=customer_id, erased_at=T0))

        response = await client.get(
            f"/customers/{customer_id}/features", headers=bearer("segments:read")
        )
        assert response.status_code == 404


class TestGetCustomerFeatures:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_answers_404_for_a_customer_no_event_mentioned(
        self, client: httpx.AsyncClient
    ) -> None:
        unknown = uuid.uuid4()

        response = await client.get(
            f"/customers/{unknown}/features", headers=bearer("segments:read")
        )

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/not-found"
        assert response.json()["detail"] == f"no features for customer {unknown} yet"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_points_at_a_malformed_customer_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody/features", headers=bearer("segments:read"))

        assert response.status_code == 422
        assert {e["pointer"] for e in response.json()["errors"]} == {"/path/customer_id"}

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_request_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/customers/{uuid.uuid4()}/features")

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON

    @pytest.mark.asyncio(loop_scope="session")
    async def test_refuses_a_token_without_the_read_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            f"/customers/{uuid.uuid4()}/features", headers=bearer("customers:read")
        )

        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["missing_scopes"] == ["segments:read"]


class TestProfileTicketAndSurveyFeatures:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_profile_consent_tickets_surveys_and_interaction_mix_become_features(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        ticket = uuid.uuid4()
        await deliver(
            app,
            CustomerCreated(
                customer_id=customer_id,
                display_name="Ada",
                tags=["vip", "b2b"],
                owner_id="agent-7",
                lifecycle_stage="customer",
                consent={"email": ConsentState(granted=True, at=T0)},
                created_at=T0,
            ),
        )
        await deliver(
            app,
            CustomerUpdated(customer_id=customer_id, changes={"tags": ["vip"]}, updated_at=T0),
        )
        await deliver(
            app,
            CustomerConsentChanged(
                customer_id=customer_id, channel="sms", granted=False, changed_at=T0
            ),
        )
        await deliver(app, interaction(customer_id, T0))
        await deliver(app, interaction(customer_id, T0 + timedelta(hours=1)))
        await deliver(
            app,
            TicketOpened(
                customer_id=customer_id,
                ticket_id=ticket,
                title="Broken",
                category="complaint",
                priority="high",
                opened_at=T0,
            ),
        )
        await deliver(
            app,
            TicketOpened(
                customer_id=customer_id,
                ticket_id=uuid.uuid4(),
                title="Question",
                category="question",
                priority="low",
                opened_at=T0,
            ),
        )
        await deliver(
            app,
            TicketStatusChanged(
                customer_id=customer_id,
                ticket_id=ticket,
                status="resolved",
                previous_status="open",
                changed_at=T0,
            ),
        )
        for score, at in ((2, T0 + timedelta(days=2)), (5, T0 + timedelta(days=1))):
            await deliver(
                app,
                SurveyAnswered(
                    customer_id=customer_id,
                    response_id=uuid.uuid4(),
                    survey="csat",
                    score=score,
                    answered_at=at,
                ),
            )

        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, customer_id)
        assert row is not None
        assert row.tags == ["vip"]
        assert row.owner_id == "agent-7"
        assert row.lifecycle_stage == "customer"
        assert (row.email_consent, row.sms_consent, row.phone_consent) == (True, False, None)
        assert row.interactions_by_channel == {"email": 2}
        assert row.interactions_by_kind == {"message": 2}
        assert (row.ticket_count, row.open_tickets) == (2, 1)
        # the later answer wins, whatever the order they arrive in
        assert (row.last_csat, row.last_csat_at) == (2, T0 + timedelta(days=2))
        assert row.last_nps is None

    @pytest.mark.asyncio(loop_scope="session")
    async def test_rolling_order_windows_count_recent_orders_only(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id = uuid.uuid4()
        now = datetime.now(UTC)
        for days in (10, 60, 200, 400):
            await deliver(app, order(customer_id, "1.00", placed_at=now - timedelta(days=days)))

        async with app.state.database.session() as session:
            row = await session.get(CustomerFeatures, customer_id)
        assert row is not None
        assert (row.orders_30d, row.orders_90d, row.orders_365d) == (1, 2, 3)
        assert row.order_count == 4
        assert row.first_order_at == now - timedelta(days=400)
        # the 10-day-old order leaves the 30-day window first
        assert row.windows_change_at == now - timedelta(days=10) + timedelta(days=30)
