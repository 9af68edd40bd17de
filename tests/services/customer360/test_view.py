"""customer360's 360 view and timeline: the event handlers (real PostgreSQL) and the two
read endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from services.customer360.config import Settings
from services.customer360.main import create_app
from services.customer360.models import Customer, CustomerSummary, TimelineEntry
from services.customer360.subscriptions import subscriptions
from services.customer360.view import handlers
from services.customer360.view.repository import ViewRepository
from shared.errors import PROBLEM_JSON
from shared.events import (
    BehaviourRecorded,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerScored,
    CustomerUpdated,
    Envelope,
    Event,
    InteractionRecorded,
    OrderPlaced,
    OrderStatusChanged,
    SegmentEntered,
    SegmentExited,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PII = bearer("customers:read", "customers:write", "customers:pii")
READ = bearer("customers:read")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    # Every write of a test (requests and delivered events) is rolled back at its end.
    async with api_client(app) as c:
        yield c


async def deliver(app, event: Event) -> Envelope:
    """Apply ``event`` as the consumer runner would: every handler registered for it, in one
    unit of work (the inbox claim is the runner's and is tested with it)."""
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None, f"customer360 does not subscribe to {event.event_type}"
    envelope = Envelope.wrap(event, source="/test")
    async with app.state.database.session() as session:
        await handler(session, event, envelope)
    return envelope


async def new_customer(client, headers: dict[str, str] = PII, **body: Any) -> uuid.UUID:
    response = await client.post(
        "/customers",
        json={"display_name": "Ada Lovelace", "emails": [f"{uuid.uuid4().hex[:10]}@ex.com"]} | body,
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def view(client, customer_id: uuid.UUID, headers: dict[str, str] = PII, **params: Any):
    response = await client.get(f"/customers/{customer_id}/360", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def timeline(client, customer_id: uuid.UUID, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/customers/{customer_id}/timeline", headers=READ, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def placed(customer_id, total: str, currency="EUR", *, at=T0, order_id=None) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=order_id or uuid.uuid4(),
        total=Decimal(total),
        currency=currency,
        channel="web",
        placed_at=at,
    )


def status(customer_id, order_id, new: str, old="placed", *, at=T0) -> OrderStatusChanged:
    return OrderStatusChanged(
        customer_id=customer_id,
        order_id=order_id,
        status=new,
        previous_status=old,
        changed_at=at + timedelta(hours=1),
    )


def interaction(customer_id, at, channel="email", kind="message", summary=None):
    return InteractionRecorded(
        customer_id=customer_id,
        interaction_id=uuid.uuid4(),
        channel=channel,
        kind=kind,
        direction="inbound",
        occurred_at=at,
        summary=summary,
    )


def opened(customer_id, ticket_id, at=T0) -> TicketOpened:
    return TicketOpened(
        customer_id=customer_id,
        ticket_id=ticket_id,
        title="Parcel never arrived",
        category="complaint",
        priority="high",
        opened_at=at,
    )


def ticket_status(customer_id, ticket_id, new, old, at) -> TicketStatusChanged:
    return TicketStatusChanged(
        customer_id=customer_id, ticket_id=ticket_id, status=new, previous_status=old, changed_at=at
    )


def survey(customer_id, kind, score, at=T0) -> SurveyAnswered:
    return SurveyAnswered(
        customer_id=customer_id,
        response_id=uuid.uuid4(),
        survey=kind,
        score=score,
        answered_at=at,
    )


def scored(customer_id, at, **values) -> CustomerScored:
    return CustomerScored(customer_id=customer_id, scored_at=at, **values)


async def stored_summary(app, customer_id) -> CustomerSummary | None:
    async with app.state.database.session() as session:
        return await session.get(CustomerSummary, customer_id, populate_existing=True)


async def entry_count(app, customer_id) -> int:
    async with app.state.database.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.customer_id == customer_id)
        )
        return int(count or 0)


class TestSubscriptions:
    async def test_consumes_every_event_the_view_is_built_from(self) -> None:
        assert subscriptions.handlers(OrderPlaced.event_type) == (handlers.on_order_placed,)
        assert subscriptions.handlers(CustomerMerged.event_type) == (handlers.on_customer_merged,)
        assert subscriptions.handlers(CustomerErased.event_type) == (handlers.on_customer_erased,)
        assert subscriptions.topics == [
            "rapport.customer.v1",
            "rapport.interaction.v1",
            "rapport.order.v1",
            "rapport.segment.v1",
        ]


class TestOrders:
    async def test_counts_orders_and_sums_spend_exactly_per_currency(self, app, client):
        customer_id = await new_customer(client)
        later = T0 + timedelta(days=3)

        await deliver(app, placed(customer_id, "0.10", at=later))
        await deliver(app, placed(customer_id, "0.20"))
        await deliver(app, placed(customer_id, "9.99", "usd", at=T0 - timedelta(days=1)))

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 3
        assert got["spend"] == {"EUR": "0.30", "USD": "9.99"}
        assert got["average_order_value"] == {"EUR": "0.15", "USD": "9.99"}
        assert datetime.fromisoformat(got["first_order_at"]) == T0 - timedelta(days=1)
        assert datetime.fromisoformat(got["last_order_at"]) == later

    async def test_counts_an_order_once_however_often_it_is_announced(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "25.00")

        await deliver(app, order)
        await deliver(app, order)  # a second event (new id) about the same order

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 1
        assert got["spend"] == {"EUR": "25.00"}

    async def test_a_cancelled_or_refunded_order_leaves_the_spend_and_the_dates(self, app, client):
        customer_id = await new_customer(client)
        first, kept, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await deliver(app, placed(customer_id, "10.00", at=T0, order_id=first))
        await deliver(app, placed(customer_id, "20.00", at=T0 + timedelta(days=1), order_id=kept))
        await deliver(app, placed(customer_id, "30.00", at=T0 + timedelta(days=2), order_id=last))

        await deliver(app, status(customer_id, first, "cancelled"))
        await deliver(app, status(customer_id, last, "paid", at=T0 + timedelta(days=2)))
        await deliver(app, status(customer_id, last, "refunded", "paid", at=T0 + timedelta(days=3)))
        await deliver(app, status(customer_id, first, "cancelled"))  # said twice

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 1
        assert got["spend"] == {"EUR": "20.00"}
        assert got["average_order_value"] == {"EUR": "20.00"}
        assert datetime.fromisoformat(got["first_order_at"]) == T0 + timedelta(days=1)
        assert datetime.fromisoformat(got["last_order_at"]) == T0 + timedelta(days=1)

    async def test_a_currency_whose_orders_were_all_cancelled_disappears(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "5.00", "GBP")
        await deliver(app, order)

        await deliver(app, status(customer_id, order.order_id, "cancelled"))

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 0
        assert got["spend"] == {}
        assert got["average_order_value"] == {}
        assert got["first_order_at"] is None
        assert got["last_order_at"] is None

    async def test_a_cancellation_seen_before_its_order_keeps_the_order_out(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "99.00")

        await deliver(app, status(customer_id, order.order_id, "cancelled"))
        await deliver(app, order)

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 0
        assert got["spend"] == {}

    async def test_a_late_older_status_does_not_undo_a_newer_one(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "12.00")
        await deliver(app, order)

        await deliver(app, status(customer_id, order.order_id, "refunded", at=T0 + timedelta(1)))
        await deliver(app, status(customer_id, order.order_id, "paid", at=T0))

        got = (await view(client, customer_id))["aggregates"]
        assert got["order_count"] == 0
        assert got["spend"] == {}

    async def test_puts_orders_and_their_status_changes_on_the_timeline(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "1E+2", "JPY")
        placed_envelope = await deliver(app, order)
        await deliver(app, status(customer_id, order.order_id, "shipped"))

        items = (await timeline(client, customer_id))["items"]

        assert [(i["kind"], i["title"]) for i in items] == [
            ("order.status_changed", "Order shipped"),
            ("order.placed", "Order placed: 100 JPY"),
        ]
        assert items[1]["reference_id"] == str(order.order_id)
        assert items[1]["data"] == {"total": "100", "currency": "JPY", "channel": "web"}
        assert items[0]["data"] == {"status": "shipped", "previous_status": "placed"}
        async with app.state.database.session() as session:
            event_ids = await session.scalars(
                select(TimelineEntry.event_id).where(TimelineEntry.customer_id == customer_id)
            )
            assert placed_envelope.id in set(event_ids)


class TestInteractionsTicketsSurveys:
    async def test_keeps_the_latest_interaction_and_its_channel(self, app, client):
        customer_id = await new_customer(client)
        latest = T0 + timedelta(hours=5)

        await deliver(app, interaction(customer_id, latest, "call", "call", "Asked for a refund"))
        await deliver(app, interaction(customer_id, T0, "email"))

        got = await view(client, customer_id)
        assert datetime.fromisoformat(got["aggregates"]["last_interaction_at"]) == latest
        assert got["aggregates"]["last_interaction_channel"] == "call"
        assert [(i["kind"], i["title"], i["summary"]) for i in got["timeline"]] == [
            ("interaction.call", "Call (call, inbound)", "Asked for a refund"),
            ("interaction.message", "Message (email, inbound)", None),
        ]

    async def test_behaviour_moves_the_last_interaction_and_makes_one_entry(self, app, client):
        customer_id = await new_customer(client)
        await deliver(app, interaction(customer_id, T0, "email"))
        browsed = T0 + timedelta(hours=2)
        await deliver(
            app,
            BehaviourRecorded(
                customer_id=customer_id,
                counts={"page_view": 12, "search": 1},
                channels=["web"],
                first_occurred_at=T0 + timedelta(hours=1),
                last_occurred_at=browsed,
                last_channel="web",
                urls=["https://shop.example.com/p/mug"],
                search_terms=["mug"],
            ),
        )
        got = await view(client, customer_id)
        assert datetime.fromisoformat(got["aggregates"]["last_interaction_at"]) == browsed
        assert got["aggregates"]["last_interaction_channel"] == "web"
        assert [(i["kind"], i["title"]) for i in got["timeline"]] == [
            ("interaction.behaviour", "Browsed: 12 page views, 1 search (web)"),
            ("interaction.message", "Message (email, inbound)"),
        ]

    async def test_withholds_free_text_without_the_pii_scope(self, app, client):
        customer_id = await new_customer(client)
        await deliver(app, interaction(customer_id, T0, summary="Call me on +86 138 1234 5678"))
        await deliver(app, opened(customer_id, uuid.uuid4(), T0 + timedelta(hours=1)))

        clear = (await view(client, customer_id, PII))["timeline"]
        withheld = (await view(client, customer_id, READ))["timeline"]
        listed = (await timeline(client, customer_id))["items"]

        assert [(e["title"], e["summary"]) for e in clear] == [
            ("Ticket opened (complaint, high)", "Parcel never arrived"),
            ("Message (email, inbound)", "Call me on +86 138 1234 5678"),
        ]
        assert [e["summary"] for e in withheld] == [None, None]
        assert [e["summary"] for e in listed] == [None, None]
        assert [e["title"] for e in withheld] == [e["title"] for e in clear]

    async def test_counts_open_tickets_through_their_status_changes(self, app, client):
        customer_id = await new_customer(client)
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await deliver(app, opened(customer_id, a))
        await deliver(app, opened(customer_id, b))
        await deliver(app, ticket_status(customer_id, a, "pending", "open", T0 + timedelta(1)))
        await deliver(app, ticket_status(customer_id, b, "resolved", "open", T0 + timedelta(1)))
        # c's resolution arrives before its opening: it never counts as open.
        await deliver(app, ticket_status(customer_id, c, "closed", "open", T0 + timedelta(2)))
        await deliver(app, opened(customer_id, c))

        assert (await view(client, customer_id))["aggregates"]["open_tickets"] == 1

        await deliver(app, ticket_status(customer_id, b, "open", "resolved", T0 + timedelta(3)))

        got = await view(client, customer_id)
        assert got["aggregates"]["open_tickets"] == 2
        kinds = [i["kind"] for i in got["timeline"]]
        assert kinds.count("ticket.opened") == 3
        assert {"ticket.pending", "ticket.resolved", "ticket.closed", "ticket.open"} <= set(kinds)
        assert got["timeline"][0]["title"] == "Ticket reopened"

    async def test_averages_csat_and_keeps_the_latest_nps(self, app, client):
        customer_id = await new_customer(client)

        await deliver(app, survey(customer_id, "csat", 5))
        await deliver(app, survey(customer_id, "csat", 4))
        await deliver(app, survey(customer_id, "csat", 4))
        await deliver(app, survey(customer_id, "nps", 9, T0 + timedelta(days=2)))
        await deliver(app, survey(customer_id, "nps", 3, T0))  # older, arriving late

        got = await view(client, customer_id)
        assert got["aggregates"]["csat_average"] == 4.33
        assert got["aggregates"]["csat_count"] == 3
        assert got["aggregates"]["last_nps"] == 9
        assert datetime.fromisoformat(got["aggregates"]["last_nps_at"]) == T0 + timedelta(days=2)
        titles = {i["title"] for i in got["timeline"]}
        assert {"CSAT answered: 5/5", "NPS answered: 9/10"} <= titles


class TestSegmentation:
    async def test_tracks_current_segments(self, app, client):
        customer_id = await new_customer(client)
        vip, churners = uuid.uuid4(), uuid.uuid4()

        await deliver(app, SegmentEntered(customer_id=customer_id, segment_id=vip, entered_at=T0))
        await deliver(
            app, SegmentEntered(customer_id=customer_id, segment_id=churners, entered_at=T0)
        )
        await deliver(app, SegmentEntered(customer_id=customer_id, segment_id=vip, entered_at=T0))
        await deliver(
            app,
            SegmentExited(
                customer_id=customer_id, segment_id=churners, exited_at=T0 + timedelta(1)
            ),
        )

        got = await view(client, customer_id)
        assert got["aggregates"]["segment_ids"] == [str(vip)]
        assert got["timeline"][0]["kind"] == "segment.exited"
        assert got["timeline"][0]["reference_id"] == str(churners)

    async def test_keeps_the_latest_scores_and_ignores_an_older_scoring(self, app, client):
        customer_id = await new_customer(client)
        newer = scored(
            customer_id,
            T0 + timedelta(days=1),
            recency=5,
            frequency=4,
            monetary=3,
            rfm_segment="champions",
            lifecycle_stage="customer",
            clv=Decimal("1234.50"),
            clv_currency="eur",
            churn_risk=0.125,
        )
        await deliver(app, newer)
        await deliver(app, scored(customer_id, T0, recency=1, lifecycle_stage="churned"))

        got = await view(client, customer_id)
        agg = got["aggregates"]
        assert (agg["recency"], agg["frequency"], agg["monetary"]) == (5, 4, 3)
        assert agg["rfm_segment"] == "champions"
        assert agg["lifecycle_stage"] == "customer"
        assert agg["clv"] == "1234.50"
        assert agg["clv_currency"] == "EUR"
        assert agg["churn_risk"] == 0.125
        assert datetime.fromisoformat(agg["scored_at"]) == T0 + timedelta(days=1)
        assert got["timeline"] == []  # scores are figures, not events of the customer's life


class TestProfileEvents:
    async def test_profile_changes_reach_the_timeline_without_their_personal_values(
        self, app, client
    ):
        customer_id = await new_customer(client)

        await deliver(
            app, CustomerCreated(customer_id=customer_id, display_name="Ada", created_at=T0)
        )
        await deliver(
            app,
            CustomerUpdated(
                customer_id=customer_id,
                changes={"emails": ["secret@example.com"], "tags": ["vip"]},
                updated_at=T0 + timedelta(minutes=1),
                actor="user-1",
            ),
        )
        await deliver(
            app,
            CustomerConsentChanged(
                customer_id=customer_id,
                channel="sms",
                granted=False,
                changed_at=T0 + timedelta(minutes=2),
                source="support",
            ),
        )

        items = (await timeline(client, customer_id))["items"]
        assert [(i["kind"], i["title"]) for i in items] == [
            ("consent.changed", "SMS consent withdrawn"),
            ("profile.updated", "Profile updated: emails, tags"),
            ("profile.created", "Person profile created"),
        ]
        assert items[1]["data"] == {"fields": ["emails", "tags"], "actor": "user-1"}
        assert "secret@example.com" not in str(items)
        assert items[0]["data"]["granted"] is False


class TestUnknownCustomers:
    async def test_keeps_events_about_a_customer_it_does_not_know_yet(self, app, client):
        stranger = uuid.uuid4()

        await deliver(app, placed(stranger, "7.00"))
        await deliver(app, interaction(stranger, T0, "chat"))

        summary = await stored_summary(app, stranger)
        assert summary is not None
        assert summary.order_count == 1
        assert summary.last_interaction_channel == "chat"
        assert await entry_count(app, stranger) == 2


class TestMerge:
    async def test_the_survivor_absorbs_the_duplicates_figures_and_timeline(self, app, client):
        survivor = await new_customer(client)
        duplicate = uuid.uuid4()  # e.g. known only from an import, never stored here
        seg_a, seg_b = uuid.uuid4(), uuid.uuid4()
        dup_order = placed(duplicate, "30.00", at=T0 - timedelta(days=10))
        ticket = uuid.uuid4()
        await deliver(app, placed(survivor, "10.00", at=T0))
        await deliver(app, placed(survivor, "5.00", "USD", at=T0))
        await deliver(app, dup_order)
        await deliver(app, interaction(survivor, T0, "email"))
        await deliver(app, interaction(duplicate, T0 + timedelta(hours=1), "sms"))
        await deliver(app, opened(duplicate, ticket))
        await deliver(app, survey(survivor, "csat", 2))
        await deliver(app, survey(duplicate, "csat", 5))
        await deliver(app, survey(duplicate, "nps", 10, T0 + timedelta(days=1)))
        await deliver(app, survey(survivor, "nps", 6, T0))
        await deliver(app, SegmentEntered(customer_id=survivor, segment_id=seg_a, entered_at=T0))
        await deliver(app, SegmentEntered(customer_id=duplicate, segment_id=seg_a, entered_at=T0))
        await deliver(app, SegmentEntered(customer_id=duplicate, segment_id=seg_b, entered_at=T0))
        await deliver(app, scored(survivor, T0, rfm_segment="at_risk"))
        await deliver(app, scored(duplicate, T0 + timedelta(1), rfm_segment="champions", recency=5))

        await deliver(
            app,
            CustomerMerged(
                customer_id=survivor,
                merged_id=duplicate,
                merged_by="admin-1",
                merged_at=T0 + timedelta(days=5),
            ),
        )

        got = await view(client, survivor, timeline_limit=100)
        agg = got["aggregates"]
        assert agg["order_count"] == 3
        assert agg["spend"] == {"EUR": "40.00", "USD": "5.00"}
        assert agg["average_order_value"] == {"EUR": "20.00", "USD": "5.00"}
        assert datetime.fromisoformat(agg["first_order_at"]) == T0 - timedelta(days=10)
        assert datetime.fromisoformat(agg["last_order_at"]) == T0
        assert agg["last_interaction_channel"] == "sms"
        assert agg["open_tickets"] == 1
        assert agg["csat_count"] == 2
        assert agg["csat_average"] == 3.5
        assert agg["last_nps"] == 10
        assert sorted(agg["segment_ids"]) == sorted([str(seg_a), str(seg_b)])
        assert agg["rfm_segment"] == "champions"
        assert agg["recency"] == 5
        assert len(got["timeline"]) == 14
        assert got["timeline"][0]["kind"] == "customer.merged"
        assert got["timeline"][0]["reference_id"] == str(duplicate)
        assert await stored_summary(app, duplicate) is None
        assert await entry_count(app, duplicate) == 0

        # The duplicate's order now belongs to the survivor: its cancellation counts there.
        await deliver(app, status(duplicate, dup_order.order_id, "cancelled"))
        agg = (await view(client, survivor))["aggregates"]
        assert agg["spend"] == {"EUR": "10.00", "USD": "5.00"}
        assert datetime.fromisoformat(agg["first_order_at"]) == T0

    async def test_events_for_a_merged_away_profile_go_to_its_survivor(self, app, client):
        survivor = await new_customer(client)
        async with app.state.database.session() as session:
            merged = Customer(
                display_name="Ada L.",
                emails=[],
                phones=[],
                tags=[],
                status="merged",
                merged_into=survivor,
            )
            session.add(merged)
        await deliver(app, placed(merged.id, "8.00"))

        got = await view(client, survivor)
        assert got["aggregates"]["order_count"] == 1
        assert got["timeline"][0]["kind"] == "order.placed"
        assert await stored_summary(app, merged.id) is None
        # The merged id itself answers with the survivor's view.
        assert (await view(client, merged.id))["profile"]["id"] == str(survivor)

    async def test_a_merge_into_a_since_erased_survivor_erases_the_duplicate_too(self, app, client):
        async with app.state.database.session() as session:
            erased = Customer(display_name="-", emails=[], phones=[], tags=[], status="erased")
            session.add(erased)
        duplicate = uuid.uuid4()
        await deliver(app, interaction(duplicate, T0, summary="personal details"))

        await deliver(
            app,
            CustomerMerged(
                customer_id=erased.id, merged_id=duplicate, merged_by="admin-1", merged_at=T0
            ),
        )

        assert await stored_summary(app, duplicate) is None
        assert await entry_count(app, duplicate) == 0
        assert await stored_summary(app, erased.id) is None


class TestErase:
    async def test_forgets_the_figures_and_the_timeline(self, app, client):
        customer_id = uuid.uuid4()
        await deliver(app, placed(customer_id, "5.00"))
        await deliver(app, interaction(customer_id, T0, summary="Lives at 1 Main St"))
        await deliver(app, opened(customer_id, uuid.uuid4()))

        await deliver(app, CustomerErased(customer_id=customer_id, erased_at=T0))

        assert await stored_summary(app, customer_id) is None
        assert await entry_count(app, customer_id) == 0
        async with app.state.database.session() as session:
            repo = ViewRepository(session)
            assert await repo.spend(customer_id) == []

    async def test_drops_late_events_about_an_erased_customer(self, app, client):
        async with app.state.database.session() as session:
            erased = Customer(display_name="-", emails=[], phones=[], tags=[], status="erased")
            session.add(erased)

        await deliver(app, interaction(erased.id, T0, summary="personal details"))

        assert await stored_summary(app, erased.id) is None
        assert await entry_count(app, erased.id) == 0


class TestGet360:
    async def test_a_customer_without_events_has_zero_figures_and_an_empty_timeline(self, client):
        customer_id = await new_customer(client)

        got = await view(client, customer_id)

        assert got["profile"]["id"] == str(customer_id)
        assert got["aggregates"]["order_count"] == 0
        assert got["aggregates"]["spend"] == {}
        assert got["aggregates"]["open_tickets"] == 0
        assert got["aggregates"]["csat_average"] is None
        assert got["aggregates"]["segment_ids"] == []
        assert got["timeline"] == []
        assert got["timeline_next_cursor"] is None

    async def test_masks_personal_data_without_the_pii_scope(self, client):
        customer_id = await new_customer(client, emails=["wei.zhang@example.com"])

        masked = await view(client, customer_id, READ)
        clear = await view(client, customer_id, PII)

        assert masked["profile"]["emails"] == ["w***@example.com"]
        assert clear["profile"]["emails"] == ["wei.zhang@example.com"]

    async def test_shows_the_latest_entries_and_a_cursor_to_the_older_ones(self, app, client):
        customer_id = await new_customer(client)
        for day in range(5):
            await deliver(app, interaction(customer_id, T0 + timedelta(days=day)))

        got = await view(client, customer_id, timeline_limit=2)

        assert [datetime.fromisoformat(i["occurred_at"]) for i in got["timeline"]] == [
            T0 + timedelta(days=4),
            T0 + timedelta(days=3),
        ]
        rest = await timeline(client, customer_id, cursor=got["timeline_next_cursor"])
        assert [datetime.fromisoformat(i["occurred_at"]) for i in rest["items"]] == [
            T0 + timedelta(days=d) for d in (2, 1, 0)
        ]

    async def test_another_teams_customer_looks_like_it_does_not_exist(self, client):
        theirs = await new_customer(
            client, bearer("customers:write", subject="rep-b", team="b", scope_mode="team")
        )

        response = await client.get(
            f"/customers/{theirs}/360",
            headers=bearer("customers:read", subject="rep-a", team="a", scope_mode="team"),
        )

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/not-found"

    async def test_answers_404_for_an_unknown_customer_even_with_events(self, app, client):
        stranger = uuid.uuid4()
        await deliver(app, placed(stranger, "1.00"))

        response = await client.get(f"/customers/{stranger}/360", headers=READ)

        assert response.status_code == 404
        assert response.json()["detail"] == f"customer {stranger} does not exist"

    async def test_refuses_a_timeline_limit_out_of_range(self, client):
        customer_id = await new_customer(client)

        response = await client.get(
            f"/customers/{customer_id}/360", headers=READ, params={"timeline_limit": 0}
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {e["pointer"] for e in response.json()["errors"]} == {"/query/timeline_limit"}

    async def test_refuses_a_request_without_a_token(self, client):
        response = await client.get(f"/customers/{uuid.uuid4()}/360")

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON

    async def test_refuses_a_token_without_the_read_scope(self, client):
        response = await client.get(
            f"/customers/{uuid.uuid4()}/360", headers=bearer("interactions:read")
        )

        assert response.status_code == 403
        assert response.json()["missing_scopes"] == ["customers:read"]


class TestTimeline:
    async def test_pages_newest_first_without_repeats_on_equal_times(self, app, client):
        customer_id = await new_customer(client)
        for _ in range(3):
            await deliver(app, interaction(customer_id, T0))
        await deliver(app, placed(customer_id, "1.00", at=T0 + timedelta(hours=1)))

        first = await timeline(client, customer_id, limit=2)
        second = await timeline(client, customer_id, limit=2, cursor=first["next_cursor"])

        assert [i["kind"] for i in first["items"]] == ["order.placed", "interaction.message"]
        assert [i["kind"] for i in second["items"]] == ["interaction.message"] * 2
        assert second["next_cursor"] is None
        ids = [i["id"] for i in first["items"] + second["items"]]
        assert len(set(ids)) == 4
        assert ids[1:] == sorted(ids[1:], reverse=True)

    async def test_filters_by_exact_kind_or_by_family(self, app, client):
        customer_id = await new_customer(client)
        order = placed(customer_id, "3.00")
        await deliver(app, order)
        await deliver(app, status(customer_id, order.order_id, "paid"))
        await deliver(app, interaction(customer_id, T0, "call", "call"))
        await deliver(app, opened(customer_id, uuid.uuid4()))

        family = await timeline(client, customer_id, kind="order")
        exact = await timeline(client, customer_id, kind=["order.placed", "ticket.opened"])

        assert [i["kind"] for i in family["items"]] == ["order.status_changed", "order.placed"]
        assert sorted(i["kind"] for i in exact["items"]) == ["order.placed", "ticket.opened"]

    async def test_refuses_a_malformed_kind(self, client):
        customer_id = await new_customer(client)

        response = await client.get(
            f"/customers/{customer_id}/timeline", headers=READ, params={"kind": "order.%"}
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert {e["pointer"] for e in response.json()["errors"]} == {"/query/kind/0"}

    async def test_refuses_a_cursor_it_did_not_issue(self, client):
        customer_id = await new_customer(client)

        response = await client.get(
            f"/customers/{customer_id}/timeline", headers=READ, params={"cursor": "bm9wZQ"}
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"] == "/problems/bad-request"

    async def test_an_erased_customer_answers_410(self, app, client):
        async with app.state.database.session() as session:
            erased = Customer(display_name="-", emails=[], phones=[], tags=[], status="erased")
            session.add(erased)

        response = await client.get(f"/customers/{erased.id}/timeline", headers=READ)

        assert response.status_code == 410
        assert response.headers["content-type"] == PROBLEM_JSON


class TestListFiltersFromEvents:
    async def test_segment_and_computed_lifecycle_stage_filter_the_customer_list(self, app, client):
        tag = f"f{uuid.uuid4().hex[:8]}"
        member = await new_customer(client, tags=[tag], lifecycle_stage="lead")
        other = await new_customer(client, tags=[tag], lifecycle_stage="lead")
        segment = uuid.uuid4()
        await deliver(app, SegmentEntered(customer_id=member, segment_id=segment, entered_at=T0))
        await deliver(app, scored(other, T0, lifecycle_stage="customer"))

        async def ids(**params):
            response = await client.get("/customers", params={"tag": tag, **params}, headers=PII)
            assert response.status_code == 200, response.text
            return {uuid.UUID(c["id"]) for c in response.json()["items"]}

        assert await ids(segment_id=str(segment)) == {member}
        # segmentation's computed stage wins over the one set on the profile
        assert await ids(lifecycle_stage="customer") == {other}
        assert await ids(lifecycle_stage="lead") == {member}
