"""``rapport outbox status``, ``rapport kafka topics ensure``, ``rapport dlq list|replay``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.config import Settings
from services.customer360.main import create_app
from shared.cli import main
from shared.events import CUSTOMER_TOPIC, TOPICS, CustomerUpdated, Envelope, dead_letter_topic
from shared.messaging import ConsumerRunner, Producer, Subscriptions
from shared.ops.dlq import list_dead_letters, replay_dead_letters
from tests.support import api_client, bearer, running

WRITE = bearer("customers:read", "customers:write")


class TestOutboxStatus:
    def test_counts_the_unsent_events_of_each_part_and_their_age(
        self, new_database, make_settings, capsys
    ) -> None:
        url = new_database(migrated=True)

        async def create_two() -> None:
            # The relay is off in tests: the events stay in the outbox.
            app = create_app(make_settings(Settings, database_url=url))
            async with api_client(app, rollback=False) as client:
                for name in ("李娜", "Lena Fischer"):
                    response = await client.post(
                        "/customers", json={"display_name": name}, headers=WRITE
                    )
                    assert response.status_code == 201

        asyncio.run(create_two())
        assert main(["outbox", "status", "--url", url, "--json"]) == 0
        status = {s["part"]: s for s in json.loads(capsys.readouterr().out)}
        assert status["customer360"]["backlog"] == 2
        assert status["customer360"]["topics"] == {CUSTOMER_TOPIC: 2}
        assert 0 <= status["customer360"]["oldest_age_s"] < 60
        assert status["customer360"]["error"] is None
        for part in ("gateway", "interactions", "orders", "segmentation"):
            assert status[part]["backlog"] == 0
            assert status[part]["oldest_age_s"] == 0

        assert main(["outbox", "status", "--url", url, "--part", "customer360"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[1].split()[:2] == ["customer360", "2"]

    def test_an_unmigrated_database_is_reported_not_crashed_on(self, new_database, capsys) -> None:
        url = new_database()
        assert main(["outbox", "status", "--url", url, "--part", "orders", "--json"]) == 1
        [status] = json.loads(capsys.readouterr().out)
        assert status["error"] == "no outbox table (not migrated?)"


@pytest.mark.kafka
def test_topics_ensure_creates_event_and_dead_letter_topics_once(
    infra, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", infra.bootstrap_servers)
    assert main(["kafka", "topics", "ensure"]) == 0
    first = capsys.readouterr().out
    assert main(["kafka", "topics", "ensure"]) == 0
    second = capsys.readouterr().out
    assert "rapport: 0 topic(s) created" in second
    assert "rapport.dlq.segmentation" in first

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    expected = {*TOPICS, *(dead_letter_topic(p) for p in ("gateway", "customer360", "orders"))}
    assert expected <= asyncio.run(topics())


class BrokenHandler(Exception):
    pass


async def mine(settings, group: str, event_id: str):
    """Our dead letter (other tests leave garbage on the shared topic: dead-lettered too)."""
    return [
        d
        for d in await list_dead_letters(
            settings,
            group,
        )
        if d.event_id == event_id
    ]


@pytest.mark.kafka
@pytest.mark.asyncio(loop_scope="session")
async def test_a_dead_letter_is_listed_then_replayed_once_and_applied(
    make_settings, infra, monkeypatch, capsys
) -> None:
    settings = make_settings(Settings)
    group = f"ops-dlq-{uuid4().hex[:8]}"
    customer = uuid4()
    event = Envelope.wrap(
        CustomerUpdated(
            customer_id=customer, changes={"tier": "gold"}, updated_at=datetime.now(UTC)
        ),
        source="/test",
    )
    broken = True
    applied: list[str] = []
    subscriptions = Subscriptions()

    @subscriptions.on(CustomerUpdated)
    async def handle(session: AsyncSession, _: CustomerUpdated, envelope: Envelope) -> None:
        if envelope.id != event.id:
            return  # other tests' events on the shared topic
        if broken:
            raise BrokenHandler("tier table missing")
        applied.append(str(envelope.id))

    app = create_app(settings)
    async with running(app):

        def runner(producer: Producer) -> ConsumerRunner:
            return ConsumerRunner(
                group=group,
                bootstrap_servers=infra.bootstrap_servers,
                database=app.state.database,
                subscriptions=subscriptions,
                producer=producer,
                max_retries=0,
                retry_backoff=0.01,
            )

        producer = Producer(settings)
        first = runner(producer)
        first.start()
        try:
            raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
            await raw.start()
            try:
                await raw.send_and_wait(
                    CUSTOMER_TOPIC, value=event.data, key=event.key, headers=event.kafka_headers()
                )
            finally:
                await raw.stop()
            async with asyncio.timeout(60):
                while not (letters := await mine(settings, group, str(event.id))):
                    await asyncio.sleep(0.5)
        finally:
            await first.stop(timeout=5)
        [letter] = letters
        assert letter.event_id == str(event.id)
        assert letter.key == str(customer)
        assert letter.error == "BrokenHandler: tier table missing"
        assert letter.original_topic == CUSTOMER_TOPIC
        assert letter.replayed is False

        # The handler is fixed; the dead letter goes back to its topic, once.
        broken = False
        # (Only ours: other tests leave poison on the shared topic, dead-lettered here too.)
        ours = {str(event.id)}
        replayed = await replay_dead_letters(settings, group, event_ids=ours)
        assert [d.event_id for d in replayed] == [str(event.id)]
        assert await replay_dead_letters(settings, group, event_ids=ours) == []
        [again] = await mine(settings, group, str(event.id))
        assert again.replayed is True

        second = runner(producer)
        second.start()
        try:
            async with asyncio.timeout(60):
                while not applied:
                    await asyncio.sleep(0.2)
        finally:
            await second.stop(timeout=5)
            await producer.stop()
        assert applied == [str(event.id)]

    # The command line shows it as replayed only with --all.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", infra.bootstrap_servers)
    assert await asyncio.to_thread(main, ["dlq", "list", "--group", group, "--json"]) == 0
    assert str(event.id) not in {d["event_id"] for d in json.loads(capsys.readouterr().out)}
    assert await asyncio.to_thread(main, ["dlq", "list", "--group", group, "--all", "--json"]) == 0
    [shown] = [d for d in json.loads(capsys.readouterr().out) if d["event_id"] == str(event.id)]
    assert shown["event_id"] == str(event.id)
    assert shown["replayed"] is True


@pytest.mark.kafka
@pytest.mark.asyncio(loop_scope="session")
async def test_replaying_one_dead_letter_keeps_the_ones_before_it_pending(make_settings, infra):
    settings = make_settings(Settings)
    group = f"ops-dlq-{uuid4().hex[:8]}"
    envelopes = [
        Envelope.wrap(
            CustomerUpdated(customer_id=uuid4(), changes={"n": n}, updated_at=datetime.now(UTC)),
            source="/test",
        )
        for n in range(3)
    ]
    raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await raw.start()
    try:
        for e in envelopes:  # one partition, in this order
            await raw.send_and_wait(
                dead_letter_topic(group),
                value=e.data,
                key=e.key,
                partition=0,
                headers=[
                    *e.kafka_headers(),
                    ("dlq_error", b"ValueError: boom"),
                    ("dlq_original_topic", CUSTOMER_TOPIC.encode()),
                ],
            )
    finally:
        await raw.stop()
    first, middle, last = (str(e.id) for e in envelopes)

    sent = await replay_dead_letters(settings, group, event_ids={middle})
    assert [d.event_id for d in sent] == [middle]
    letters = await list_dead_letters(settings, group)
    pending = [d.event_id for d in letters if not d.replayed]
    # The first was skipped over: appended again, still pending; the last was never reached.
    assert sorted(pending) == sorted([first, last])
    assert [d.event_id for d in letters if d.replayed] == [first, middle]  # old offsets
    assert {d.error for d in letters} == {"ValueError: boom"}

    rest = await replay_dead_letters(settings, group)
    assert sorted(d.event_id for d in rest) == sorted([first, last])
    assert [d for d in await list_dead_letters(settings, group) if not d.replayed] == []
