"""End-to-end journeys: what each kind of user does, through the gateway of a running stack.

One customer, Wei Zhang, goes through everything, journey after journey (the tests run in
file order and build on each other's facts; a failure early makes the later ones fail too):

a. a sales rep creates two profiles of Wei, finds the duplicate and merges it;
b. the partner shop posts signed order and call webhooks that land on the survivor;
c. support opens a ticket, resolves it and records a CSAT answer;
d. marketing defines "repeat buyers" and sees Wei enter on the second order and leave when
   that order is cancelled; then mails Wei a campaign (a real SMTP server receives it) and
   Wei unsubscribes with one click, which withdraws the consent in customer360;
e. the 360 view and the timeline show all of it;
f. a privacy erase removes Wei everywhere.

Eventual consistency is waited for (:func:`eventually`, 30 s); the final values are then
asserted exactly.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from tests.e2e.conftest import World, eventually
from tests.services.interactions.campaign_support import SmtpServer

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

SKU = "MUG-BLUE-350"
#: Repeat buyers: two orders or more, and no order cancelled or refunded in the last year.
REPEAT_BUYERS: dict[str, Any] = {
    "all": [
        {"field": "order_count", "op": "gte", "value": 2},
        {
            "not": {
                "performed": "order_status_changed",
                "where": [{"field": "status", "op": "in", "value": ["cancelled", "refunded"]}],
                "at_least": 1,
                "within_days": 365,
            }
        },
    ]
}


def _order(order_id: str, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "order.created",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "id": order_id,
            "currency": "EUR",
            "customer": {"id": "cus_7781", "email": "wei.zhang@shop.example"},
            "line_items": [{"sku": SKU, "quantity": quantity, "price": "12.90"}],
            **extra,
        },
    }


async def test_a_sales_rep_creates_customers_and_merges_the_duplicate(world: World) -> None:
    c, sales = world.client, world.sales
    first = await c.post(
        "/customers",
        json={
            "display_name": "Wei Zhang",
            "emails": ["wei.zhang@example.com"],
            "phones": ["+86 138 1234 5678"],
            "tags": ["vip"],
        },
        headers=sales,
    )
    assert first.status_code == 201, first.text
    survivor = first.json()
    assert (survivor["owner_id"], survivor["team_id"]) == ("rep-li", "north")
    assert survivor["phones"] == ["+8613812345678"]
    second = await c.post(
        "/customers",
        json={
            "display_name": "Wei Zhang",
            "emails": ["Wei.Zhang@Shop.Example"],
            "external_ids": {"shop": "cus_7781"},
            "tags": ["newsletter"],
        },
        headers=sales,
    )
    assert second.status_code == 201, second.text
    duplicate = second.json()
    a, b = survivor["id"], duplicate["id"]

    found = await c.get(f"/customers/{a}/duplicates", headers=sales)
    assert found.status_code == 200, found.text
    (candidate,) = found.json()["items"]
    assert candidate["customer"]["id"] == b
    assert sorted(candidate["reasons"]) == ["same_email_local_part", "same_name"]
    assert candidate["score"] == pytest.approx(1 - (1 - 0.6) * (1 - 0.45))

    merged = await c.post(f"/customers/{a}:merge", json={"merged_ids": [b]}, headers=sales)
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["id"] == a
    assert body["status"] == "active"
    assert sorted(body["emails"]) == ["wei.zhang@example.com", "wei.zhang@shop.example"]
    assert body["phones"] == ["+8613812345678"]
    assert body["external_ids"] == {"shop": "cus_7781"}
    assert sorted(body["tags"]) == ["newsletter", "vip"]

    # the duplicate's id now answers with the survivor
    old = await c.get(f"/customers/{b}", headers=sales)
    assert old.status_code == 200, old.text
    assert old.json()["id"] == a
    assert old.headers["content-location"] == f"/api/v1/customers/{a}"
    # both identities find the survivor, and only it
    for q in ("wei.zhang@shop", "wei.zhang@example", "12345678"):
        hits = await c.get("/customers:search", params={"q": q}, headers=sales)
        assert hits.status_code == 200, hits.text
        assert [h["customer"]["id"] for h in hits.json()["items"]] == [a], q
    resolved = await c.post(
        "/customers:resolve",
        json={"external_id": {"system": "shop", "id": "cus_7781"}, "create": False},
        headers=world.partner,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["customer_id"] == a
    world.facts.update(customer=a, duplicate=b)


async def test_b_a_partner_posts_signed_order_and_interaction_webhooks(world: World) -> None:
    c, partner, a = world.client, world.partner, world.facts["customer"]
    product = await c.post(
        "/products",
        json={"sku": SKU, "name": "Blue mug 350 ml", "price": "12.90", "currency": "EUR"},
        headers=world.admin,
    )
    assert product.status_code == 201, product.text

    order_receipt = await world.webhook(
        "shop",
        _order(
            "1001",
            2,
            shipping_address={"city": "Berlin", "line1": "Hauptstraße 1"},
            note="gift wrap, please",
        ),
    )
    started = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    call_receipt = await world.webhook(
        "conversations",
        {
            "id": "conv-4711",
            "type": "call",
            "direction": "inbound",
            "customer": {"phone": "+86 138 1234 5678", "name": "Wei Zhang"},
            "agent": "agent-chen",
            "started_at": started.isoformat(),
            "duration_s": 240,
            "status": "answered",
            "subject": "Where is my mug?",
            "summary": "Asked when order 1001 ships; told tomorrow.",
        },
    )

    orders = await eventually(
        lambda: c.get("/orders", params={"customer_id": a}, headers=partner),
        lambda r: r.status_code == 200 and len(r.json()["items"]) == 1,
        "the partner order on the survivor",
    )
    (order,) = orders.json()["items"]
    assert (order["customer_id"], order["source"], order["external_id"]) == (a, "shop", "1001")
    assert (order["currency"], order["total"], order["paid_total"]) == ("EUR", "25.80", "0.00")
    assert [(line["quantity"], line["total"]) for line in order["lines"]] == [(2, "25.80")]
    assert order["shipping_address"] == {"city": "Berlin", "line1": "Hauptstraße 1"}
    assert order["note"] == "gift wrap, please"

    calls = await eventually(
        lambda: c.get("/interactions", params={"customer_id": a}, headers=partner),
        lambda r: r.status_code == 200 and len(r.json()["items"]) == 1,
        "the partner call on the survivor",
    )
    (call,) = calls.json()["items"]
    assert (call["customer_id"], call["channel"], call["kind"]) == (a, "call", "call")
    assert (call["direction"], call["agent_id"]) == ("inbound", "agent-chen")
    assert (call["source"], call["event_id"]) == ("conversations", "conv-4711")
    assert call["subject"] == "Where is my mug?"
    assert call["summary"] == "Asked when order 1001 ships; told tomorrow."
    assert call["metadata"] == {"duration_s": 240, "outcome": "answered"}
    assert datetime.fromisoformat(call["occurred_at"]) == started

    # the gateway's delivery log says which service handled each, and for whom
    for receipt in (order_receipt, call_receipt):
        detail = await eventually(
            partial(c.get, f"/admin/webhook-receipts/{receipt['receipt_id']}", headers=world.admin),
            lambda r: r.status_code == 200 and r.json()["status"] == "processed",
            "the webhook reported processed",
        )
        assert detail.json()["customer_ids"] == [a]
    world.facts.update(
        order_1001=order["id"], receipts=[order_receipt["receipt_id"], call_receipt["receipt_id"]]
    )


async def test_c_support_opens_resolves_a_ticket_and_records_csat(world: World) -> None:
    c, support, a = world.client, world.support, world.facts["customer"]
    since = datetime.now(UTC) - timedelta(hours=1)
    opened = await c.post(
        "/tickets",
        json={
            "customer_id": a,
            "title": "Mug arrived chipped",
            "description": "The handle of one mug is chipped.",
            "category": "complaint",
            "priority": "high",
            "channel": "call",
            "order_id": world.facts["order_1001"],
        },
        headers=support,
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()
    assert (ticket["status"], ticket["priority"], ticket["customer_id"]) == ("open", "high", a)
    resolved = await c.post(
        f"/tickets/{ticket['id']}:transition", json={"to": "resolved"}, headers=support
    )
    assert resolved.status_code == 200, resolved.text
    answered = await c.post(
        "/surveys/responses",
        json={
            "customer_id": a,
            "survey": "csat",
            "score": 4,
            "ticket_id": ticket["id"],
            "comment": "Replacement came fast.",
        },
        headers=support,
    )
    assert answered.status_code == 201, answered.text

    shown = await c.get(f"/tickets/{ticket['id']}", headers=support)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "resolved"
    assert shown.json()["resolved_at"] is not None
    summary = await c.get(
        "/surveys/summary",
        params={"customer_id": a, "since": since.isoformat()},
        headers=support,
    )
    assert summary.status_code == 200, summary.text
    assert summary.json()["csat"] == {"responses": 1, "average": 4.0}
    assert summary.json()["nps"]["responses"] == 0

    view = await eventually(
        lambda: c.get(f"/customers/{a}/360", headers=support),
        lambda r: (
            r.status_code == 200
            and r.json()["aggregates"]["csat_count"] == 1
            and r.json()["aggregates"]["open_tickets"] == 0
        ),
        "the resolved ticket and the CSAT answer in the 360 view",
    )
    assert view.json()["aggregates"]["csat_average"] == 4.0
    world.facts.update(ticket=ticket["id"])


async def test_d_marketing_sees_a_customer_enter_and_leave_a_segment(world: World) -> None:
    c, marketing, a = world.client, world.marketing, world.facts["customer"]
    created = await c.post(
        "/segments",
        json={"name": "Repeat buyers", "kind": "dynamic", "rule": REPEAT_BUYERS},
        headers=marketing,
    )
    assert created.status_code == 201, created.text
    segment = created.json()["id"]
    # one order so far: not a member
    before = await c.get(f"/customers/{a}/segments", headers=marketing)
    assert (before.status_code, before.json()) == (200, [])

    await world.webhook("shop", _order("1002", 1))
    entered = await eventually(
        lambda: c.get(f"/customers/{a}/segments", headers=marketing),
        lambda r: r.status_code == 200 and len(r.json()) == 1,
        "the customer entering the segment on the second order",
    )
    (membership,) = entered.json()
    assert (membership["segment_id"], membership["name"]) == (segment, "Repeat buyers")
    assert (membership["kind"], membership["version"]) == ("dynamic", 1)
    members = await c.get(f"/segments/{segment}/members", headers=marketing)
    assert [m["customer_id"] for m in members.json()["items"]] == [a]
    view = await eventually(
        lambda: c.get(f"/customers/{a}/360", headers=marketing),
        lambda r: (
            r.status_code == 200
            and r.json()["aggregates"]["segment_ids"] == [segment]
            and r.json()["aggregates"]["order_count"] == 2
        ),
        "SegmentEntered and the second order in the 360 view",
    )
    assert view.json()["aggregates"]["spend"] == {"EUR": "38.70"}

    await world.webhook(
        "shop",
        {
            "type": "order.cancelled",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"id": "1002", "reason": "customer"},
        },
    )
    await eventually(
        lambda: c.get(f"/customers/{a}/segments", headers=marketing),
        lambda r: r.status_code == 200 and r.json() == [],
        "the customer leaving the segment when the order is cancelled",
    )
    members = await c.get(f"/segments/{segment}/members", headers=marketing)
    assert members.json()["items"] == []
    view = await eventually(
        lambda: c.get(f"/customers/{a}/360", headers=marketing),
        lambda r: (
            r.status_code == 200
            and r.json()["aggregates"]["segment_ids"] == []
            and r.json()["aggregates"]["order_count"] == 1
        ),
        "SegmentExited and the cancellation in the 360 view",
    )
    assert view.json()["aggregates"]["spend"] == {"EUR": "25.80"}
    world.facts.update(segment=segment)


async def test_d2_marketing_mails_a_campaign_and_wei_unsubscribes(
    world: World, smtp: SmtpServer
) -> None:
    c, marketing, a = world.client, world.marketing, world.facts["customer"]
    wei = {"wei.zhang@example.com", "wei.zhang@shop.example"}
    consented = await c.patch(
        f"/customers/{a}",
        json={"consent": {"email": {"granted": True, "source": "signup-form"}}},
        headers=world.sales,
    )
    assert consented.status_code == 200, consented.text
    created = await c.post(
        "/campaigns",
        json={
            "name": "Thank you",
            "channel": "email",
            "customer_ids": [a],
            "subject": "Thank you, {{ customer.display_name }}",
            "body": "Dear {{ customer.display_name }}, thank you for your orders.",
        },
        headers=marketing,
    )
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    # consent travels customer360 → interactions as an event: start once it has arrived
    started = await eventually(
        lambda: c.post(f"/campaigns/{campaign}:start", headers=marketing),
        lambda r: r.status_code == 200,
        "the campaign starting once interactions knows Wei's e-mail consent",
    )
    assert (started.json()["audience"], started.json()["queued"]) == (1, 1)

    received = await eventually(
        partial(asyncio.to_thread, lambda: [r for r in smtp.inbox.received if set(r.to) & wei]),
        lambda got: len(got) == 1,
        "the e-mail at the SMTP server",
    )
    (mail,) = received
    assert mail.subject == "Thank you, Wei Zhang"
    assert mail.body.startswith("Dear Wei Zhang, thank you for your orders.")
    unsubscribe = mail.message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{world.stack.root}/api/v1/campaign-links/")

    # one click, as a mail client does it (RFC 8058): no credentials, the link is signed
    clicked = await c.post(
        unsubscribe,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200, clicked.text
    profile = await eventually(
        lambda: c.get(f"/customers/{a}", headers=world.sales),
        lambda r: r.status_code == 200 and not r.json()["consent"]["email"]["granted"],
        "the unsubscribe withdrawing Wei's e-mail consent in customer360",
    )
    assert profile.json()["consent"]["email"]["source"] is not None
    figures = await eventually(
        lambda: c.get(f"/campaigns/{campaign}/report", headers=marketing),
        lambda r: r.status_code == 200 and r.json()["unsubscribed"] == 1,
        "the report counting the unsubscribe",
    )
    assert (figures.json()["audience"], figures.json()["sent"]) == (1, 1)
    # the timeline shows the e-mail as sent, without Wei's signed unsubscribe link
    touches = await c.get("/interactions", params={"customer_id": a}, headers=world.admin)
    (sent,) = [i for i in touches.json()["items"] if i["channel"] == "email"]
    assert (sent["direction"], sent["subject"]) == ("outbound", "Thank you, Wei Zhang")
    assert sent["summary"] == (
        "Dear Wei Zhang, thank you for your orders.\n\n--\nUnsubscribe: [unsubscribe link]\n"
    )


EXPECTED_TIMELINE = Counter(
    {
        "profile.created": 2,
        # the survivor gained the duplicate's identities; consent given, then withdrawn
        "profile.updated": 3,
        "consent.changed": 2,
        "customer.merged": 1,
        "order.placed": 2,
        "order.status_changed": 1,
        "interaction.call": 1,
        "interaction.message": 1,  # the campaign e-mail, outbound
        "ticket.opened": 1,
        "ticket.resolved": 1,
        "survey.csat": 1,
        "segment.entered": 1,
        "segment.exited": 1,
    }
)


async def test_e_the_360_view_and_timeline_show_it_all(world: World) -> None:
    c, sales, a = world.client, world.sales, world.facts["customer"]

    async def timeline() -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
            page = await c.get(f"/customers/{a}/timeline", params=params, headers=sales)
            assert page.status_code == 200, page.text
            entries += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return entries

    entries = await eventually(
        timeline,
        lambda got: Counter(e["kind"] for e in got) == EXPECTED_TIMELINE,
        "every journey's entries on the timeline",
    )
    view = await c.get(f"/customers/{a}/360", headers=sales)
    assert view.status_code == 200, view.text
    profile, aggregates = view.json()["profile"], view.json()["aggregates"]
    assert profile["id"] == a
    assert sorted(profile["emails"]) == ["wei.zhang@example.com", "wei.zhang@shop.example"]
    assert (aggregates["order_count"], aggregates["spend"]) == (1, {"EUR": "25.80"})
    assert aggregates["average_order_value"] == {"EUR": "25.80"}
    assert aggregates["last_interaction_channel"] == "email"  # the campaign's
    assert (aggregates["open_tickets"], aggregates["csat_average"]) == (0, 4.0)
    assert aggregates["csat_count"] == 1
    assert aggregates["segment_ids"] == []
    updates = [e["data"] for e in entries if e["kind"] == "profile.updated"]
    assert updates == [  # newest first
        {"fields": ["consent"], "actor": "interactions-campaigns"},
        {"fields": ["consent"], "actor": "rep-li"},
        {"fields": ["emails", "external_ids", "tags"], "actor": "rep-li"},
    ]
    consents = [e["data"] for e in entries if e["kind"] == "consent.changed"]
    assert [(d["granted"], d["source"], d["actor"]) for d in consents] == [
        (False, "unsubscribe", "interactions-campaigns"),
        (True, "signup-form", "rep-li"),
    ]
    # newest first, and the latest entries are the 360 view's
    times = [e["occurred_at"] for e in entries]
    assert [datetime.fromisoformat(t) for t in times] == sorted(
        (datetime.fromisoformat(t) for t in times), reverse=True
    )
    assert [e["id"] for e in view.json()["timeline"]] == [
        e["id"] for e in entries[: len(view.json()["timeline"])]
    ]
    placed = sorted(Decimal(e["data"]["total"]) for e in entries if e["kind"] == "order.placed")
    assert placed == [Decimal("12.90"), Decimal("25.80")]


async def test_f_a_privacy_erase_removes_the_person_everywhere(world: World) -> None:
    c, a, b = world.client, world.facts["customer"], world.facts["duplicate"]
    erased = await c.delete(f"/customers/{a}", headers=world.sales)
    assert erased.status_code == 204, erased.text

    for path in (f"/customers/{a}", f"/customers/{b}", f"/customers/{a}/360"):
        gone = await c.get(path, headers=world.admin)
        assert gone.status_code == 410, (path, gone.text)
    for q in ("wei.zhang", "Wei Zhang", "12345678"):
        hits = await c.get("/customers:search", params={"q": q}, headers=world.admin)
        assert (hits.status_code, hits.json()["items"]) == (200, []), q

    # orders keep amounts, lose the address and the note
    orders = await eventually(
        lambda: c.get("/orders", params={"customer_id": a}, headers=world.admin),
        lambda r: (
            r.status_code == 200
            and all(o["shipping_address"] is None and o["note"] is None for o in r.json()["items"])
        ),
        "orders scrubbed",
    )
    assert sorted((o["external_id"], o["total"]) for o in orders.json()["items"]) == [
        ("1001", "25.80"),
        ("1002", "12.90"),
    ]
    # interactions keep that the call and the campaign e-mail happened, not what was said
    touches = await eventually(
        lambda: c.get("/interactions", params={"customer_id": a}, headers=world.admin),
        lambda r: r.status_code == 200 and all(i["summary"] is None for i in r.json()["items"]),
        "interactions scrubbed",
    )
    assert sorted(
        (i["channel"], i["kind"], i["subject"], i["metadata"]) for i in touches.json()["items"]
    ) == [("call", "call", None, {}), ("email", "message", None, {})]
    ticket = await eventually(
        lambda: c.get(f"/tickets/{world.facts['ticket']}", headers=world.admin),
        lambda r: r.status_code == 200 and r.json()["title"] == "[erased]",
        "ticket scrubbed",
    )
    assert ticket.json()["description"] is None
    assert ticket.json()["status"] == "resolved"
    # segmentation forgets the features and memberships
    await eventually(
        lambda: c.get(f"/customers/{a}/features", headers=world.admin),
        lambda r: r.status_code == 404,
        "segment features dropped",
    )
    memberships = await c.get(f"/customers/{a}/segments", headers=world.admin)
    assert (memberships.status_code, memberships.json()) == (200, [])
    # the gateway empties the stored webhooks that named the person
    receipts = await c.get("/admin/webhook-receipts", params={"limit": 100}, headers=world.admin)
    assert receipts.status_code == 200, receipts.text
    ids = [r["id"] for r in receipts.json()["items"]]
    assert set(world.facts["receipts"]) <= set(ids)
    assert len(ids) == 4  # orders 1001, 1002, the cancel of 1002, and the call
    for receipt_id in ids:
        detail = await eventually(
            partial(c.get, f"/admin/webhook-receipts/{receipt_id}", headers=world.admin),
            lambda r: r.status_code == 200 and r.json()["body_erased_at"] is not None,
            "the stored webhook body erased",
        )
        assert (detail.json()["body"], detail.json()["headers"]) == ("", {})
        assert detail.json()["customer_ids"] == [a]
