"""The transactional outbox and its relay, against the real database and broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from sqlalchemy import text

from services.customer360.config import Settings
from services.customer360.main import create_app
from shared.events import CUSTOMER_TOPIC, CustomerUpdated, Envelope
from shared.messaging import publish
from tests.shared.kafka_tail import tail
from tests.support import running

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]


def _updated(customer_id: object, n: int) -> CustomerUpdated:
    return CustomerUpdated(customer_id=customer_id, changes={"n": n}, updated_at=datetime.now(UTC))


async def _outbox_count(app: object, schema: str = "customer360") -> int:
    async with app.state.database.session() as s:  # type: ignore[attr-defined]
        return int((await s.execute(text(f"SELECT count(*) FROM {schema}.outbox"))).scalar_one())


class TestOutbox:
    async def test_a_rolled_back_transaction_publishes_nothing(self, make_settings, infra):
        app = create_app(make_settings(Settings, outbox_relay_enabled=True))
        rolled_back, committed = uuid4(), uuid4()
        async with running(app), tail(infra.bootstrap_servers, CUSTOMER_TOPIC) as messages:
            database = app.state.database
            with pytest.raises(RuntimeError, match="handler failed"):
                async with database.session() as session:
                    await publish(session, _updated(rolled_back, 1))
                    raise RuntimeError("handler failed")
            # A committed marker after the rolled-back one: once it arrives, anything the
            # rolled-back transaction had sent would have arrived before it (same relay, same
            # partition order is not guaranteed across keys, so wait a grace period too).
            async with database.session() as session:
                await publish(session, _updated(committed, 1))
            await messages.wait_for(str(committed), count=1)
            await asyncio.sleep(0.5)
            assert messages.of(str(rolled_back)) == []
            assert await _outbox_count(app) == 0

    async def test_a_committed_transaction_publishes_exactly_its_events_in_order(
        self, make_settings, infra
    ):
        app = create_app(make_settings(Settings, outbox_relay_enabled=True))
        customer = uuid4()
        async with running(app), tail(infra.bootstrap_servers, CUSTOMER_TOPIC) as messages:
            database = app.state.database
            # One transaction with several events, then several concurrent transactions
            # for the same customer: the per-key order must be the commit order.
            async with database.session() as session:
                await publish(session, *[_updated(customer, n) for n in range(10)])

            async def write(n: int) -> None:
                async with database.session() as session:
                    await publish(session, _updated(customer, n))

            for n in range(10, 40):
                await write(n)
            received = await messages.wait_for(str(customer), count=40)
            await asyncio.sleep(0.3)
            received = messages.of(str(customer))
            envelopes = [Envelope.from_kafka(m.topic, m.value, m.headers) for m in received]
            numbers = [e.event().changes["n"] for e in envelopes]  # type: ignore[attr-defined]
            assert numbers == list(range(40))
            assert len({e.id for e in envelopes}) == 40
            assert {e.type for e in envelopes} == {"rapport.customer.updated.v1"}
            assert {e.source for e in envelopes} == {"/rapport/customer360"}
            assert {m.key for m in received} == {str(customer).encode()}
            assert len({m.partition for m in received}) == 1
            assert await _outbox_count(app) == 0

    async def test_concurrent_writers_keep_each_customers_order(self, make_settings, infra):
        app = create_app(make_settings(Settings, outbox_relay_enabled=True))
        customers = [uuid4() for _ in range(5)]
        async with running(app), tail(infra.bootstrap_servers, CUSTOMER_TOPIC) as messages:
            database = app.state.database

            async def writer(customer: object) -> None:
                for n in range(20):
                    async with database.session() as session:
                        await publish(session, _updated(customer, n))

            await asyncio.gather(*(writer(c) for c in customers))
            for customer in customers:
                got = await messages.wait_for(str(customer), count=20)
                numbers = [
                    Envelope.from_kafka(m.topic, m.value, m.headers).event().changes["n"]  # type: ignore[attr-defined]
                    for m in got
                ]
                assert numbers == list(range(20))


class TestRelayDuringBrokerOutage:
    async def test_events_wait_in_the_outbox_and_all_arrive_once_the_broker_is_back(
        self, make_settings, infra
    ):
        if infra.broker is None:
            pytest.skip("the broker is external: this test stops and starts it")
        app = create_app(make_settings(Settings, outbox_relay_enabled=True))
        customer = uuid4()
        async with running(app):
            database = app.state.database
            await asyncio.to_thread(infra.broker.stop)
            try:
                for n in range(25):
                    async with database.session() as session:
                        await publish(session, _updated(customer, n))
                await asyncio.sleep(1.0)
                assert await _outbox_count(app) == 25
            finally:
                await asyncio.to_thread(infra.broker.start)
            async with tail(
                infra.bootstrap_servers, CUSTOMER_TOPIC, from_beginning=True
            ) as messages:
                got = await messages.wait_for(str(customer), count=25, timeout=90)
                numbers = [
                    Envelope.from_kafka(m.topic, m.value, m.headers).event().changes["n"]  # type: ignore[attr-defined]
                    for m in got
                ]
                # At least once: a batch interrupted by the outage may be sent again, but
                # nothing is lost and the first occurrences keep the commit order.
                assert list(dict.fromkeys(numbers)) == list(range(25))
            for _ in range(100):
                if await _outbox_count(app) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await _outbox_count(app) == 0


class TestRelayAfterAProducerFailure:
    async def test_a_producer_that_can_no_longer_send_is_replaced_and_nothing_is_lost(
        self, make_settings, infra
    ):
        """After a broker crash an idempotent aiokafka producer may be left unable to send
        (``OutOfOrderSequenceNumber`` kills its sender, which fails every later send): the
        relay must replace it rather than retry through it forever."""
        app = create_app(make_settings(Settings, outbox_relay_enabled=True))
        customer = uuid4()
        async with running(app), tail(infra.bootstrap_servers, CUSTOMER_TOPIC) as messages:
            database, producer = app.state.database, app.state.runtime.producer
            async with database.session() as session:
                await publish(session, _updated(customer, 0))
            await messages.wait_for(str(customer), count=1)
            poisoned = await producer.ensure_started()
            # What aiokafka's sender does to its accumulator when that error kills it.
            poisoned._message_accumulator.fail_all(OutOfOrderSequenceNumber())
            with pytest.raises(OutOfOrderSequenceNumber):
                await poisoned.send("rapport.customer.v1", b"x")

            async with database.session() as session:
                await publish(session, *[_updated(customer, n) for n in range(1, 6)])
            got = await messages.wait_for(str(customer), count=6, timeout=30)
            numbers = [
                Envelope.from_kafka(m.topic, m.value, m.headers).event().changes["n"]  # type: ignore[attr-defined]
                for m in got
            ]
            assert list(dict.fromkeys(numbers)) == list(range(6))
            assert await producer.ensure_started() is not poisoned
            for _ in range(50):
                if await _outbox_count(app) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await _outbox_count(app) == 0
