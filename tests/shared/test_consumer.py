"""The consumer runner: inbox dedupe, retries, dead letters, and moving on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.config import Settings
from services.customer360.main import create_app
from services.customer360.models import Customer
from shared.events import CUSTOMER_TOPIC, CustomerUpdated, Envelope, dead_letter_topic
from shared.messaging import ConsumerRunner, Producer, Subscriptions, deferred
from tests.shared.kafka_tail import tail
from tests.support import running

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]


class PoisonError(Exception):
    pass


def _subscriptions(calls: list[str]) -> Subscriptions:
    subscriptions = Subscriptions()

    @subscriptions.on(CustomerUpdated)
    async def add_tag(session: AsyncSession, event: CustomerUpdated, envelope: Envelope) -> None:
        calls.append(str(envelope.id))
        if event.changes.get("poison"):
            raise PoisonError("this event can never be applied")
        customer = await session.get(Customer, event.customer_id)
        if customer is not None:
            customer.tags = [*customer.tags, str(event.changes["tag"])]

    return subscriptions


Message = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


async def _send(bootstrap: str, *messages: Message) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(CUSTOMER_TOPIC, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def _message(envelope: Envelope) -> Message:
    return envelope.key, envelope.data, envelope.kafka_headers()


async def _eventually(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


def _grouped_runner(
    group: str,
    infra: Any,
    database: Any,
    subscriptions: Subscriptions,
    producer: Producer,
) -> ConsumerRunner:
    """A runner applying up to 100 events per transaction, retrying a failure once."""
    return ConsumerRunner(
        group=group,
        bootstrap_servers=infra.bootstrap_servers,
        database=database,
        subscriptions=subscriptions,
        producer=producer,
        max_retries=1,
        retry_backoff=0.01,
        group_size=100,
    )


class TestConsumerRunner:
    async def test_the_same_event_twice_is_applied_once_and_poison_goes_to_the_dead_letter_topic(
        self, make_settings, infra
    ):
        settings = make_settings(Settings)
        app = create_app(settings)
        group = f"test-{uuid4().hex[:8]}"
        calls: list[str] = []
        async with running(app):
            database = app.state.database
            async with database.session() as session:
                customer = Customer(display_name="Ada", emails=[], phones=[], tags=[])
                session.add(customer)
            now = datetime.now(UTC)
            first = Envelope.wrap(
                CustomerUpdated(customer_id=customer.id, changes={"tag": "a"}, updated_at=now),
                source="/test",
            )
            poison = Envelope.wrap(
                CustomerUpdated(customer_id=customer.id, changes={"poison": True}, updated_at=now),
                source="/test",
            )
            after = Envelope.wrap(
                CustomerUpdated(customer_id=customer.id, changes={"tag": "b"}, updated_at=now),
                source="/test",
            )
            garbage = (str(customer.id).encode(), b"{not json", [("ce_type", b"x")])
            producer = Producer(settings)
            runner = ConsumerRunner(
                group=group,
                bootstrap_servers=infra.bootstrap_servers,
                database=database,
                subscriptions=_subscriptions(calls),
                producer=producer,
                max_retries=2,
                retry_backoff=0.01,
                group_size=1,  # one transaction per event: handler calls are countable
            )
            # Same partition, in this order: the event, its redelivery, a poison message,
            # a malformed message, and a good event after them.
            await _send(
                infra.bootstrap_servers,
                _message(first),
                _message(first),
                _message(poison),
                garbage,
                _message(after),
            )
            runner.start()
            try:

                async def both_applied() -> bool:
                    async with database.session() as s:
                        c = await s.get(Customer, customer.id, populate_existing=True)
                        return c is not None and c.tags == ["a", "b"]

                await _eventually(both_applied, timeout=60)
            finally:
                await runner.stop()
                await producer.stop()

            # Applied once: the redelivered copy was skipped by the inbox, not re-run.
            assert calls.count(str(first.id)) == 1
            # The poison message was tried 1 + max_retries times, then dead-lettered.
            assert calls.count(str(poison.id)) == 3
            async with database.session() as s:
                inbox = (
                    (
                        await s.execute(
                            text(
                                "SELECT event_id FROM customer360.inbox "
                                "WHERE consumer = :g AND event_id = ANY(:ids)"
                            ),
                            {"g": group, "ids": [first.id, poison.id, after.id]},
                        )
                    )
                    .scalars()
                    .all()
                )
                assert sorted(inbox) == sorted([first.id, after.id])
                await s.execute(delete(Customer).where(Customer.id == customer.id))

        async with tail(
            infra.bootstrap_servers, dead_letter_topic(group), from_beginning=True
        ) as dead:
            letters = await dead.wait_for(str(customer.id), count=2)
        by_error = {dict(m.headers)["dlq_error_type"].decode(): dict(m.headers) for m in letters}
        assert set(by_error) == {"PoisonError", "EnvelopeError"}
        assert by_error["PoisonError"]["ce_id"] == str(poison.id).encode()
        assert b"can never be applied" in by_error["PoisonError"]["dlq_error"]
        assert by_error["PoisonError"]["dlq_attempts"] == b"3"
        assert by_error["PoisonError"]["dlq_original_topic"] == CUSTOMER_TOPIC.encode()

    async def test_consecutive_events_share_transactions_and_a_poison_one_falls_back_alone(
        self, make_settings, infra
    ):
        settings = make_settings(Settings)
        app = create_app(settings)
        group = f"test-{uuid4().hex[:8]}"
        sessions: list[AsyncSession] = []  # kept alive: their ids stay distinct
        ours: list[UUID] = []
        subscriptions = Subscriptions()

        @subscriptions.on(CustomerUpdated)
        async def add_tag(
            session: AsyncSession, event: CustomerUpdated, envelope: Envelope
        ) -> None:
            if event.customer_id not in ours:
                return  # other tests' events on the same topic (the group reads from the start)
            sessions.append(session)
            if event.changes.get("poison"):
                raise PoisonError("this event can never be applied")
            customer = await session.get(Customer, event.customer_id)
            assert customer is not None
            customer.tags = [*customer.tags, str(event.changes["tag"])]

        async with running(app):
            database = app.state.database
            async with database.session() as session:
                customer = Customer(display_name="Grace", emails=[], phones=[], tags=[])
                session.add(customer)
                await session.flush()
                ours.append(customer.id)
            now = datetime.now(UTC)

            def update(**changes: object) -> Envelope:
                event = CustomerUpdated(customer_id=customer.id, changes=changes, updated_at=now)
                return Envelope.wrap(event, source="/test")

            before = [update(tag=f"a{i}") for i in range(40)]
            poison = update(poison=True)
            after = [update(tag=f"b{i}") for i in range(40)]
            await _send(infra.bootstrap_servers, *(_message(e) for e in [*before, poison, *after]))
            producer = Producer(settings)
            runner = _grouped_runner(group, infra, database, subscriptions, producer)
            runner.start()
            want = [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)]
            try:

                async def all_applied() -> bool:
                    async with database.session() as s:
                        c = await s.get(Customer, customer.id, populate_existing=True)
                        return c is not None and len(c.tags) >= len(want)

                await _eventually(all_applied, timeout=60)
            finally:
                await runner.stop()
                await producer.stop()
            async with database.session() as s:
                got = await s.get(Customer, customer.id, populate_existing=True)
                assert got is not None
                # each good event applied exactly once, in partition order, around the poison
                assert got.tags == want
                await s.execute(delete(Customer).where(Customer.id == customer.id))
        # 81 events: one by one, 82 transactions (the poison is tried twice). Grouped, a few
        # per fetch from the broker (one when all 81 come in one fetch: 5 transactions).
        assert len({id(s) for s in sessions}) <= 40

    async def test_deferred_work_runs_once_per_transaction_and_a_failing_hook_isolates_events(
        self, make_settings, infra
    ):
        settings = make_settings(Settings)
        app = create_app(settings)
        group = f"test-{uuid4().hex[:8]}"
        subscriptions = Subscriptions()
        hook_calls: list[list[str]] = []

        @subscriptions.at_commit
        async def add_tags(session: AsyncSession, tags: set[str]) -> None:
            hook_calls.append(sorted(tags))
            if "boom" in tags:
                raise PoisonError("deferred work that can never succeed")
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            customer.tags = [*customer.tags, *sorted(tags)]

        @subscriptions.on(CustomerUpdated)
        async def defer_tag(
            session: AsyncSession, event: CustomerUpdated, envelope: Envelope
        ) -> None:
            if event.customer_id != customer_id:
                return  # earlier tests' events on the same topic
            pending = deferred(session, add_tags)
            assert pending is not None, "the runner's sessions defer"
            pending.add(str(event.changes["tag"]))

        async with running(app):
            database = app.state.database
            async with database.session() as session:
                # a session of its own (not the runner's) defers nothing: act now
                assert deferred(session, add_tags) is None
                customer = Customer(display_name="Edsger", emails=[], phones=[], tags=[])
                session.add(customer)
            customer_id = customer.id
            now = datetime.now(UTC)

            def update(tag: str) -> Envelope:
                event = CustomerUpdated(
                    customer_id=customer_id, changes={"tag": tag}, updated_at=now
                )
                return Envelope.wrap(event, source="/test")

            tags = [f"t{i:02d}" for i in range(30)]
            events = [update(t) for t in tags]
            await _send(infra.bootstrap_servers, *(_message(e) for e in events))
            producer = Producer(settings)
            runner = _grouped_runner(group, infra, database, subscriptions, producer)
            runner.start()

            async def tagged(n: int) -> bool:
                async with database.session() as s:
                    c = await s.get(Customer, customer_id, populate_existing=True)
                    return c is not None and len(c.tags) >= n

            try:
                await _eventually(lambda: tagged(len(tags)), timeout=60)
                calls_before_boom = len(hook_calls)
                # a group whose deferred work fails: its good events still apply, alone
                await _send(
                    infra.bootstrap_servers,
                    *(_message(update(t)) for t in ["u1", "boom", "u2"]),
                )
                await _eventually(lambda: tagged(len(tags) + 2), timeout=60)
            finally:
                await runner.stop()
                await producer.stop()
            async with database.session() as s:
                got = await s.get(Customer, customer_id, populate_existing=True)
                assert got is not None
                assert sorted(got.tags) == sorted([*tags, "u1", "u2"])
                await s.execute(delete(Customer).where(Customer.id == customer_id))
        # 30 events, fewer hook runs: one per transaction, each with the union of its work
        first = hook_calls[:calls_before_boom]
        assert sorted(t for call in first for t in call) == tags
        assert len(first) < len(events)
        # the failing group, then each of its events alone (boom: tried, retried, dead-lettered)
        rest = hook_calls[calls_before_boom:]
        assert ["u1"] in rest
        assert ["u2"] in rest
        assert rest.count(["boom"]) == 2

    async def test_a_consumer_stuck_in_one_step_is_restarted_and_the_event_applied_once(
        self, make_settings, infra
    ):
        """A step that never ends (here a handler; after a broker crash it can be the Kafka
        client) stops the partition: the watchdog restarts the consumer, which reads the
        event again; the stuck attempt's transaction was rolled back, so it applies once."""
        settings = make_settings(Settings)
        app = create_app(settings)
        subscriptions = Subscriptions()
        attempts: list[str] = []
        never = asyncio.Event()

        @subscriptions.on(CustomerUpdated)
        async def tag(session: AsyncSession, event: CustomerUpdated, envelope: Envelope) -> None:
            if event.customer_id != customer_id:
                return  # earlier tests' events on the same topic
            attempts.append(str(event.changes["tag"]))
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            customer.tags = [*customer.tags, str(event.changes["tag"])]
            await session.flush()
            if len(attempts) == 1:
                await never.wait()  # stuck, holding its transaction

        async with running(app):
            database = app.state.database
            async with database.session() as session:
                customer = Customer(display_name="Grace", emails=[], phones=[], tags=[])
                session.add(customer)
            customer_id = customer.id
            event = CustomerUpdated(
                customer_id=customer_id, changes={"tag": "once"}, updated_at=datetime.now(UTC)
            )
            await _send(infra.bootstrap_servers, _message(Envelope.wrap(event, source="/test")))
            producer = Producer(settings)
            runner = ConsumerRunner(
                group=f"test-{uuid4().hex[:8]}",
                bootstrap_servers=infra.bootstrap_servers,
                database=database,
                subscriptions=subscriptions,
                producer=producer,
                stall_timeout_s=2.0,
            )
            runner.start()

            async def tagged() -> bool:
                async with database.session() as s:
                    c = await s.get(Customer, customer_id, populate_existing=True)
                    return c is not None and c.tags == ["once"]

            try:
                await _eventually(tagged, timeout=60)
            finally:
                await runner.stop()
                await producer.stop()
            async with database.session() as s:
                await s.execute(delete(Customer).where(Customer.id == customer_id))
        assert attempts == ["once", "once"]
        assert runner.stalls == 1
