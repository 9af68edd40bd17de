"""Group commit at the webhook front door: many webhooks, one transaction — and still exactly
once, durable before the answer, nothing half-written, nothing acknowledged and then lost.

Everything runs against the real PostgreSQL. To hold a batch open on purpose, a test takes an
``EXCLUSIVE`` lock on ``gateway.outbox`` from another connection: the writer's statement then
waits (its receipts cannot commit without their outbox rows) while new webhooks queue up.
Failures come from the database itself — a trigger that refuses some rows, a server that is
not there, a connection killed under the writer — never from mocks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from gateway.config import Settings
from gateway.main import create_app
from gateway.webhooks import service
from gateway.webhooks.batcher import ReceiptBatcher
from gateway.webhooks.repository import NewReceipt
from shared.db import Database
from shared.errors import ServiceUnavailable
from shared.events import Envelope, WebhookReceived, webhook_key
from shared.standard_webhooks import sign
from tests.support import running

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _driver_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest_asyncio.fixture(loop_scope="session")
async def settings(make_settings):
    return make_settings(Settings)


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(settings) -> AsyncIterator[Any]:
    """A running gateway app (lifespan on), without the test-transaction rollback: the
    front door commits for real, so the sources it checks are committed too."""
    app = create_app(settings)
    async with running(app):
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def client(gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def db(settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection of the test, beside the gateway's."""
    conn = await asyncpg.connect(_driver_url(settings.database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def new_source(app) -> tuple[str, str]:
    name = f"batch-{uuid.uuid4().hex[:10]}"
    async with app.state.database.session() as session:
        _, secret = await service.create_source(session, name, "batcher tests")
    return name, secret.secret


def signed(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, msg_id, now, body),
        "content-type": "application/json",
    }


async def post(client: httpx.AsyncClient, source: str, secret: str, msg_id: str | None = None):
    body = json.dumps({"n": uuid.uuid4().hex}).encode()
    return await client.post(
        f"/webhooks/{source}", content=body, headers=signed(secret, body, msg_id)
    )


async def stored(db: asyncpg.Connection, source: str) -> dict[str, uuid.UUID]:
    rows = await db.fetch(
        "SELECT webhook_id, id FROM gateway.webhook_receipt WHERE source = $1", source
    )
    return {row["webhook_id"]: row["id"] for row in rows}


async def outbox_count(db: asyncpg.Connection, source: str, webhook_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM gateway.outbox WHERE key = $1",
        str(webhook_key(source, webhook_id)),
    )
    return count


def batches() -> tuple[float, float]:
    """(batches written, webhooks in them) so far, from the gateway's own histogram."""
    count = REGISTRY.get_sample_value("rapport_webhook_batch_size_count") or 0.0
    total = REGISTRY.get_sample_value("rapport_webhook_batch_size_sum") or 0.0
    return count, total


@asynccontextmanager
async def outbox_locked(settings) -> AsyncIterator[asyncpg.Connection]:
    """Hold writes to the outbox (so a batch stays open) until the block ends."""
    conn = await asyncpg.connect(_driver_url(settings.database_url))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE gateway.outbox IN EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def until_writer_waits(db: asyncpg.Connection) -> None:
    """Until a statement waits for the outbox lock (the writer's batch is open)."""
    async with asyncio.timeout(10):
        while not await db.fetchval(
            "SELECT count(*) FROM pg_locks "
            "WHERE NOT granted AND relation = 'gateway.outbox'::regclass"
        ):
            await asyncio.sleep(0.01)


async def until_queued(batcher: ReceiptBatcher, n: int) -> None:
    async with asyncio.timeout(10):
        while batcher.queued < n:
            await asyncio.sleep(0.005)


def receipt(source: str, webhook_id: str | None = None) -> NewReceipt:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    event = WebhookReceived(
        customer_id=webhook_key(source, webhook_id),
        source=source,
        webhook_id=webhook_id,
        received_at=datetime.now(UTC),
        body="{}",
    )
    return NewReceipt(
        id=uuid.uuid4(),
        source=source,
        webhook_id=webhook_id,
        headers="{}",
        body=b"{}",
        content_type="application/json",
        envelope=Envelope.wrap(event, source="/rapport/gateway"),
    )


class TestGroupCommit:
    async def test_200_concurrent_webhooks_are_each_stored_once_in_few_transactions(
        self, gateway, client, db
    ):
        source, secret = await new_source(gateway)
        ids = [f"msg_{i:03d}_{uuid.uuid4().hex[:6]}" for i in range(200)]
        batches_before, webhooks_before = batches()
        responses = await asyncio.gather(*(post(client, source, secret, i) for i in ids))
        assert [r.status_code for r in responses] == [202] * 200
        assert {r.json()["status"] for r in responses} == {"accepted"}
        rows = await stored(db, source)
        assert sorted(rows) == sorted(ids)
        assert {str(v) for v in rows.values()} == {r.json()["receipt_id"] for r in responses}
        for webhook_id, response in zip(ids, responses, strict=True):
            assert response.json()["receipt_id"] == str(rows[webhook_id])
            assert await outbox_count(db, source, webhook_id) == 1
        batches_after, webhooks_after = batches()
        assert webhooks_after - webhooks_before == 200
        assert batches_after - batches_before < 200  # grouped: fewer commits than webhooks

    async def test_copies_in_one_batch_are_stored_once_and_answered_as_duplicates(
        self, gateway, client, db, settings
    ):
        source, secret = await new_source(gateway)
        batcher = gateway.state.gateway.receipts
        body = b'{"same": true}'
        headers = signed(secret, body)
        async with outbox_locked(settings):
            blocker = asyncio.create_task(post(client, source, secret))
            await until_writer_waits(db)
            # The writer is busy with the blocker; these five queue into one next batch.
            copies = []
            for _ in range(5):
                copies.append(
                    asyncio.create_task(
                        client.post(f"/webhooks/{source}", content=body, headers=headers)
                    )
                )
                await until_queued(batcher, len(copies))
        assert (await blocker).status_code == 202
        responses = await asyncio.gather(*copies)
        statuses = [r.status_code for r in responses]
        assert statuses == [202, 200, 200, 200, 200]  # queue order: the first one is stored
        receipt_id = responses[0].json()["receipt_id"]
        assert [r.json() for r in responses[1:]] == [
            {"status": "duplicate", "receipt_id": receipt_id}
        ] * 4
        assert (await stored(db, source))[headers["webhook-id"]] == uuid.UUID(receipt_id)
        assert await outbox_count(db, source, headers["webhook-id"]) == 1

    async def test_a_webhook_stored_by_an_earlier_batch_is_a_duplicate_amid_new_ones(
        self, gateway, client, db
    ):
        source, secret = await new_source(gateway)
        first = await post(client, source, secret, "msg_known")
        assert first.status_code == 202
        responses = await asyncio.gather(
            *(post(client, source, secret, f"msg_new_{i}") for i in range(20)),
            post(client, source, secret, "msg_known"),
        )
        assert [r.status_code for r in responses[:20]] == [202] * 20
        assert responses[20].status_code == 200
        assert responses[20].json() == {
            "status": "duplicate",
            "receipt_id": first.json()["receipt_id"],
        }
        assert await outbox_count(db, source, "msg_known") == 1
        assert len(await stored(db, source)) == 21

    async def test_the_relay_is_woken_after_a_commit_that_wrote_events(self, gateway):
        wakes: list[int] = []
        gateway.state.database.on_outbox_commit(lambda: wakes.append(1))
        batcher = gateway.state.gateway.receipts
        item = receipt("wake")
        assert (await batcher.store(item))[0] == "accepted"
        assert wakes == [1]
        again = receipt("wake", item.webhook_id)
        assert await batcher.store(again) == ("duplicate", item.id)
        assert wakes == [1]  # nothing new in the outbox: no wake-up


class TestFailures:
    async def test_a_refused_batch_answers_503_and_leaves_nothing_half_written(
        self, gateway, client, db
    ):
        """The outbox refuses one source's rows: its receipts (inserted first, in the same
        statement) must vanish with them; the other source's webhooks, batched together
        with them, are stored — retried one by one after the batch failed."""
        poisoned, poisoned_secret = await new_source(gateway)
        healthy, healthy_secret = await new_source(gateway)
        trigger = f"refuse_{uuid.uuid4().hex[:8]}"
        await db.execute(
            f"""
            CREATE FUNCTION gateway.{trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF convert_from(NEW.payload, 'UTF8')::jsonb ->> 'source' = '{poisoned}' THEN
                    RAISE EXCEPTION 'refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER {trigger} BEFORE INSERT ON gateway.outbox
                FOR EACH ROW EXECUTE FUNCTION gateway.{trigger}();
            """
        )
        try:
            responses = await asyncio.gather(
                *(post(client, poisoned, poisoned_secret) for _ in range(20)),
                *(post(client, healthy, healthy_secret) for _ in range(40)),
            )
        finally:
            await db.execute(
                f"DROP TRIGGER {trigger} ON gateway.outbox; DROP FUNCTION gateway.{trigger}()"
            )
        refused, accepted = responses[:20], responses[20:]
        for response in refused:
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/service-unavailable")
            assert response.headers["retry-after"] == "1"
        assert await stored(db, poisoned) == {}
        assert [r.status_code for r in accepted] == [202] * 40
        assert len(await stored(db, healthy)) == 40

    async def test_an_unreachable_database_fails_every_waiter(self):
        database = Database(
            "postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none", schema="gateway"
        )
        batcher = ReceiptBatcher(database, write_timeout_s=5)
        batcher.start()
        try:
            results = await asyncio.gather(
                *(batcher.store(receipt("nowhere")) for _ in range(10)), return_exceptions=True
            )
        finally:
            await batcher.close()
            await database.dispose()
        assert all(isinstance(r, ServiceUnavailable) for r in results), results

    async def test_a_connection_killed_between_batches_is_replaced(self, gateway, db):
        batcher = gateway.state.gateway.receipts
        assert (await batcher.store(receipt("killed")))[0] == "accepted"
        pids = await db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'gateway' "
            "AND query LIKE '%webhook_receipt%' AND pid <> pg_backend_pid()"
        )
        assert pids
        for row in pids:
            await db.execute("SELECT pg_terminate_backend($1)", row["pid"])
        outcome, receipt_id = await batcher.store(item := receipt("killed"))
        assert (outcome, receipt_id) == ("accepted", item.id)


class TestBackPressure:
    async def test_a_full_queue_refuses_at_once_and_keeps_what_it_holds(
        self, gateway, db, settings
    ):
        batcher = ReceiptBatcher(gateway.state.database, max_queued=3)
        batcher.start()
        try:
            async with outbox_locked(settings):
                first = asyncio.create_task(batcher.store(receipt("pressure")))
                await until_writer_waits(db)
                queued = [asyncio.create_task(batcher.store(receipt("pressure"))) for _ in range(3)]
                await until_queued(batcher, 3)
                with pytest.raises(ServiceUnavailable):
                    await batcher.store(receipt("pressure"))
            outcomes = [await first, *await asyncio.gather(*queued)]
        finally:
            await batcher.close()
        assert [outcome for outcome, _ in outcomes] == ["accepted"] * 4


class TestShutdown:
    async def test_queued_webhooks_are_written_before_the_writer_stops(
        self, gateway, client, db, settings
    ):
        source, secret = await new_source(gateway)
        batcher = gateway.state.gateway.receipts
        async with outbox_locked(settings):
            first = asyncio.create_task(post(client, source, secret, "msg_in_flight"))
            await until_writer_waits(db)
            queued = []
            for i in range(30):
                queued.append(asyncio.create_task(post(client, source, secret, f"msg_q{i}")))
            await until_queued(batcher, 30)
            closing = asyncio.create_task(batcher.close(timeout_s=30))
            await asyncio.sleep(0.05)
            late = await post(client, source, secret, "msg_late")
            assert late.status_code == 503  # refused at once: never queued, never stored
            assert not closing.done()
        await closing
        answers = [await first, *await asyncio.gather(*queued)]
        assert [a.status_code for a in answers] == [202] * 31
        rows = await stored(db, source)
        assert set(rows) == {"msg_in_flight", *(f"msg_q{i}" for i in range(30))}

    async def test_what_cannot_be_written_by_the_deadline_is_refused_not_lost(
        self, gateway, client, db, settings
    ):
        source, secret = await new_source(gateway)
        batcher = gateway.state.gateway.receipts
        async with outbox_locked(settings):
            tasks = [asyncio.create_task(post(client, source, secret, "msg_first"))]
            await until_writer_waits(db)
            for i in range(10):
                tasks.append(asyncio.create_task(post(client, source, secret, f"msg_w{i}")))
            await until_queued(batcher, 10)
            await batcher.close(timeout_s=0.3)  # the database stays blocked past it
            answers = await asyncio.gather(*tasks)
        assert [a.status_code for a in answers] == [503] * 11
        assert await stored(db, source) == {}
