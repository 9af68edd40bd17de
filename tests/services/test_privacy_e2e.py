"""Merge and erase across every service, through the real broker: the duplicate's records
follow the survivor, and after an erase no personal data of the person remains in any
service's tables."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy import text

from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.customer360.subscriptions import subscriptions as c360_subscriptions
from services.interactions.config import Settings as InteractionsSettings
from services.interactions.main import create_app as interactions_app
from services.interactions.subscriptions import subscriptions as interactions_subscriptions
from services.orders.config import Settings as OrdersSettings
from services.orders.main import create_app as orders_app
from services.orders.subscriptions import subscriptions as orders_subscriptions
from services.segmentation.config import Settings as SegmentationSettings
from services.segmentation.main import create_app as segmentation_app
from services.segmentation.subscriptions import subscriptions as segmentation_subscriptions
from shared.messaging import ConsumerRunner
from tests.support import api_client, bearer

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

ALL = bearer(
    "customers:read",
    "customers:write",
    "customers:pii",
    "interactions:read",
    "interactions:write",
    "orders:read",
    "orders:write",
    "segments:read",
    "admin",
)
SCHEMAS = ("customer360", "interactions", "orders", "segmentation")


async def until(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.05)
        return value


async def pii_hits(database, needles: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Every (schema.table.column) whose text holds one of ``needles``, outbox/inbox
    bookkeeping aside (the outbox is emptied by the relay, the inbox holds only ids)."""
    hits = []
    async with database.session() as session:
        columns = await session.execute(
            text(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = ANY(:schemas) AND table_name NOT IN ('inbox') "
                "AND data_type IN ('text', 'character varying', 'jsonb', 'ARRAY', 'json')"
            ),
            {"schemas": list(SCHEMAS)},
        )
        for schema, table, column in columns:
            for needle in needles:
                found = await session.scalar(
                    text(
                        f'SELECT count(*) FROM {schema}."{table}" WHERE "{column}"::text ILIKE :n'
                    ),
                    {"n": f"%{needle}%"},
                )
                if found:
                    hits.append(f"{schema}.{table}.{column}")
    return hits


async def test_merge_moves_records_and_erase_leaves_no_personal_data(make_settings, infra):
    on = {"outbox_relay_enabled": True, "kafka_fetch_max_wait_ms": 10}
    urls = {f"{p}_url": f"http://{p}" for p in ("interactions", "orders", "segmentation")}
    apps = {
        "customer360": (
            customer360_app(make_settings(Customer360Settings, **on, **urls)),
            c360_subscriptions,
        ),
        "interactions": (
            interactions_app(
                make_settings(InteractionsSettings, customer360_url="http://customer360", **on)
            ),
            interactions_subscriptions,
        ),
        "orders": (orders_app(make_settings(OrdersSettings, **on)), orders_subscriptions),
        "segmentation": (
            segmentation_app(make_settings(SegmentationSettings, **on)),
            segmentation_subscriptions,
        ),
    }
    marker = uuid.uuid4().hex[:8]
    number = f"+86139{uuid.uuid4().int % 10**8:08d}"
    name, address = f"Zhao{marker}", f"zhao.{marker}@example.com"
    async with AsyncExitStack() as stack:
        clients = {}
        for part, (app, subscriptions) in apps.items():
            clients[part] = await stack.enter_async_context(api_client(app, rollback=False))
            runner = ConsumerRunner(
                group=f"{part}-privacy-{marker}",
                bootstrap_servers=infra.bootstrap_servers,
                database=app.state.database,
                subscriptions=subscriptions,
                producer=app.state.runtime.producer,
                fetch_max_wait_ms=10,
                retry_backoff=0.01,
            )
            runner.start()
            stack.push_async_callback(runner.stop)
        # the export reaches the other services over HTTP: here, in-process
        apps["customer360"][0].state.export_mounts = {
            f"http://{part}": httpx.ASGITransport(app=apps[part][0])
            for part in ("interactions", "orders", "segmentation")
        }
        apps["interactions"][0].state.customer_resolver.mounts = {
            "http://customer360": httpx.ASGITransport(app=apps["customer360"][0])
        }
        c360, interactions, orders = (
            clients["customer360"],
            clients["interactions"],
            clients["orders"],
        )
        database = apps["customer360"][0].state.database

        person = await c360.post(
            "/customers",
            json={"display_name": name, "emails": [address], "phones": [number]},
            headers={**ALL, "Idempotency-Key": f"create-{marker}"},
        )
        assert person.status_code == 201, person.text
        survivor_id = person.json()["id"]
        duplicate = await c360.post("/customers", json={"display_name": f"{name} dup"}, headers=ALL)
        duplicate_id = duplicate.json()["id"]
        said = await interactions.post(
            "/interactions",
            json={
                "customer_id": duplicate_id,
                "channel": "email",
                "kind": "message",
                "summary": f"{name} asked about {address}",
            },
            headers=ALL,
        )
        assert said.status_code == 201, said.text
        product = await orders.post(
            "/products",
            json={"sku": f"P-{marker}", "name": "Tea", "price": "5.00", "currency": "EUR"},
            headers=ALL,
        )
        order = await orders.post(
            "/orders",
            json={
                "customer_id": duplicate_id,
                "currency": "EUR",
                "channel": "online_store",
                "lines": [{"product_id": product.json()["id"], "quantity": 1}],
                "shipping_address": {"name": name, "line1": "1 Century Ave"},
            },
            headers={**ALL, "Idempotency-Key": f"order-{marker}"},
        )
        assert order.status_code == 201, order.text

        merged = await c360.post(
            f"/customers/{survivor_id}:merge", json={"merged_ids": [duplicate_id]}, headers=ALL
        )
        assert merged.status_code == 200, merged.text

        async def moved():  # type: ignore[no-untyped-def]
            i = await interactions.get(f"/interactions?customer_id={survivor_id}", headers=ALL)
            o = await orders.get(f"/orders?customer_id={survivor_id}", headers=ALL)
            return len(i.json()["items"]) == 1 and len(o.json()["items"]) == 1

        assert await until(moved, timeout=90.0)

        exported = await c360.get(f"/customers/{survivor_id}/export", headers=ALL)
        assert exported.status_code == 200, exported.text
        document = exported.json()
        assert document["customer"]["emails"] == [address]
        assert [p["id"] for p in document["merged_profiles"]] == [duplicate_id]
        assert {i["kind"] for i in document["identities"]} == {"email", "phone"}
        assert [i["summary"] for i in document["interactions"]] == [f"{name} asked about {address}"]
        assert [o["id"] for o in document["orders"]] == [order.json()["id"]]
        assert document["audit"][0]["action"] == "created"

        # one service down: no partial export
        mounts = apps["customer360"][0].state.export_mounts
        orders_transport = mounts.pop("http://orders")
        try:
            partial = await c360.get(f"/customers/{survivor_id}/export", headers=ALL)
            assert partial.status_code == 503
            assert partial.headers["content-type"] == "application/problem+json"
        finally:
            mounts["http://orders"] = orders_transport

        # the scan finds the person everywhere before the erase (it is not vacuous)
        before = await pii_hits(database, [name, address, number[3:]])
        assert {"customer360.customer.display_name", "interactions.interaction.summary"} <= set(
            before
        )
        assert "orders.order.shipping_address" in before

        erased = await c360.delete(f"/customers/{survivor_id}", headers=ALL)
        assert erased.status_code == 204

        async def clean():  # type: ignore[no-untyped-def]
            async with database.session() as session:
                pending = await session.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM customer360.outbox) + "
                        "(SELECT count(*) FROM orders.outbox) + "
                        "(SELECT count(*) FROM interactions.outbox)"
                    )
                )
            return pending == 0 and not await pii_hits(database, [name, address, number[3:]])

        try:
            await until(clean, timeout=30.0)
        finally:
            assert await pii_hits(database, [name, address, number[3:]]) == []
        # what is not personal stays: the order's amounts, the interaction's channel
        kept = await orders.get(f"/orders?customer_id={survivor_id}", headers=ALL)
        assert kept.json()["items"][0]["total"] == "5.00"
        assert kept.json()["items"][0]["shipping_address"] is None
        async with database.session() as session:
            json_nulls = await session.scalar(
                text(
                    'SELECT count(*) FROM orders."order" WHERE customer_id = :c '
                    "AND shipping_address = 'null'::jsonb"
                ),
                {"c": survivor_id},
            )
        assert json_nulls == 0
