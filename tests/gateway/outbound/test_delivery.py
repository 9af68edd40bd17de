"""Outbound webhooks against a real local HTTP receiver that checks signatures with the
``standardwebhooks`` library: delivery, retries and recovery, timeouts, 410, Retry-After,
rotation, the delivery log, manual retry and replay, erasure, segment filters, and one run
through the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings
from gateway.main import create_app
from gateway.outbound.fanout import GROUP
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerUpdated,
    Envelope,
    Event,
    SegmentEntered,
)
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Hit:
    at: float
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]


@dataclass
class Receiver:
    """Paths behave by their first segment: ``ok``, ``flaky-N`` (N failures first),
    ``slow``, ``gone``, ``limited`` (429 + Retry-After: 1 once), ``broken`` (always 500)."""

    base: str = ""
    secrets: dict[str, list[str]] = field(default_factory=dict)
    hits: dict[str, list[Hit]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        verified = []
        for secret in self.secrets.get(request.path, []):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        hits = self.hits.setdefault(request.path, [])
        hits.append(Hit(time.monotonic(), headers, body, verified))
        kind = request.path.split("/")[1]
        if kind.startswith("flaky-") and len(hits) <= int(kind.split("-")[1]):
            return web.Response(status=500, text="temporarily broken")
        if kind == "slow":
            await asyncio.sleep(5)
        if kind == "gone":
            return web.Response(status=410, text="unsubscribed")
        if kind == "limited" and len(hits) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if kind == "broken":
            return web.Response(status=500, text="x" * 5000)
        return web.Response(status=204 if verified else 401)

    def path(self, kind: str) -> str:
        return f"/{kind}/{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.base = f"http://127.0.0.1:{port}"
    yield receiver
    await runner.cleanup()


def _settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "outbound_enabled": True,
        "outbound_allowed": ["127.0.0.0/8"],
        "outbound_retry_schedule_s": [0, 0.2, 0.2, 0.2],
        "outbound_timeout_s": 1.0,
        "outbound_poll_s": 0.05,
        "rate_limit_enabled": False,
        **overrides,
    }
    return make_settings(Settings, **values)


@pytest_asyncio.fixture(loop_scope="session")
async def settings(make_settings: Callable[..., Settings]) -> Settings:
    return _settings(make_settings)


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: Any) -> AsyncIterator[Any]:
    async with api_client(app, rollback=False) as client:
        client._settings = app.state.settings  # type: ignore[attr-defined]
        yield client
        admin = _auth(app.state.settings, "admin")
        for endpoint in (await client.get("/api/v1/webhook-endpoints", headers=admin)).json()[
            "items"
        ]:
            await client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}", headers=admin)


def _auth(settings: Settings, role: str, subject: str = "dev-user") -> dict[str, str]:
    token = mint_dev_token(settings, role=role, subject=subject)
    return {"Authorization": f"Bearer {token}"}


async def subscribe(
    client: Any, receiver: Receiver, kind: str, types: list[str], **extra: Any
) -> dict[str, Any]:
    path = receiver.path(kind)
    response = await client.post(
        "/api/v1/webhook-endpoints",
        json={"url": receiver.base + path, "event_types": types, **extra},
        headers=_auth(client._settings, "admin"),
    )
    assert response.status_code == 201, response.text
    endpoint = response.json()
    receiver.secrets[path] = [endpoint["secret"]["secret"]]
    endpoint["path"] = path
    return endpoint


def created(customer_id: uuid.UUID, name: str = "Wei Zhang") -> Event:
    return CustomerCreated(customer_id=customer_id, display_name=name, created_at=datetime.now(UTC))


async def publish(app: Any, *events: Event) -> list[Envelope]:
    envelopes = [Envelope.wrap(e, source="/test") for e in events]
    await app.state.gateway.outbound.fanout.apply(envelopes)
    return envelopes


async def until(check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def attempts(client: Any, endpoint: dict[str, Any], **params: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/webhook-endpoints/{endpoint['id']}/attempts",
        params=params,
        headers=_auth(client._settings, "admin"),
    )
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))


class TestDelivery:
    async def test_events_arrive_signed_in_order_and_the_library_verifies_them(
        self, client, app, receiver
    ):
        endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.*"])
        customer = uuid.uuid4()
        events = [
            created(customer),
            *(
                CustomerUpdated(
                    customer_id=customer, changes={"n": n}, updated_at=datetime.now(UTC)
                )
                for n in range(3)
            ),
        ]
        envelopes = await publish(app, *events)
        hits = await until(
            lambda: (
                len(receiver.hits.get(endpoint["path"], [])) == 4
                and receiver.hits[endpoint["path"]]
            )
        )
        assert all(h.verified_by == receiver.secrets[endpoint["path"]] for h in hits)
        assert [h.headers["webhook-id"] for h in hits] == [f"msg_{e.id.hex}" for e in envelopes]
        first = Webhook(receiver.secrets[endpoint["path"]][0]).verify(hits[0].body, hits[0].headers)
        assert first["type"] == "rapport.customer.created.v1"
        assert first["data"]["display_name"] == "Wei Zhang"
        assert [
            Webhook(receiver.secrets[endpoint["path"]][0])
            .verify(h.body, h.headers)["data"]
            .get("changes")
            for h in hits[1:]
        ] == [{"n": 0}, {"n": 1}, {"n": 2}]
        log = await until(lambda: attempts(client, endpoint))
        assert {a["outcome"] for a in log} == {"succeeded"}
        assert {a["status_code"] for a in log} == {204}

    async def test_only_subscribed_types_and_events_after_creation_are_sent(
        self, client, app, receiver
    ):
        before = created(uuid.uuid4(), "Before")
        await asyncio.sleep(0.01)
        endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.updated.v1"])
        customer = uuid.uuid4()
        update = CustomerUpdated(
            customer_id=customer, changes={"x": 1}, updated_at=datetime.now(UTC)
        )
        await publish(app, before, created(customer), update)
        await until(lambda: receiver.hits.get(endpoint["path"]))
        await asyncio.sleep(0.3)
        assert len(receiver.hits[endpoint["path"]]) == 1
        assert b"rapport.customer.updated.v1" in receiver.hits[endpoint["path"]][0].body

    async def test_a_failing_endpoint_is_retried_until_it_recovers(self, client, app, receiver):
        endpoint = await subscribe(client, receiver, "flaky-2", ["rapport.customer.*"])
        await publish(app, created(uuid.uuid4()))
        hits = await until(
            lambda: (
                len(receiver.hits.get(endpoint["path"], [])) >= 3
                and receiver.hits[endpoint["path"]]
            )
        )
        assert len({h.headers["webhook-id"] for h in hits}) == 1  # stable across retries
        assert hits[1].at - hits[0].at >= 0.15  # the schedule's 0.2 s, less jitter
        log = await until(lambda: _len_at_least(attempts(client, endpoint), 3))
        assert [(a["outcome"], a["status_code"]) for a in log] == [
            ("failed", 500),
            ("failed", 500),
            ("succeeded", 204),
        ]
        assert log[0]["response_excerpt"] == "temporarily broken"
        got = (
            await client.get(
                f"/api/v1/webhook-endpoints/{endpoint['id']}",
                headers=_auth(client._settings, "admin"),
            )
        ).json()
        assert got["failing_since"] is None
        assert got["enabled"] is True

    async def test_a_hanging_endpoint_times_out_without_delaying_the_others(
        self, client, app, receiver
    ):
        slow = await subscribe(client, receiver, "slow", ["rapport.customer.*"])
        fast = await subscribe(client, receiver, "ok", ["rapport.customer.*"])
        started = time.monotonic()
        await publish(app, *(created(uuid.uuid4()) for _ in range(5)))
        await until(lambda: len(receiver.hits.get(fast["path"], [])) == 5)
        assert time.monotonic() - started < 1.0  # not behind the slow endpoint's 1 s timeout
        log = await until(lambda: attempts(client, slow, outcome="timeout"), timeout=15)
        assert log[0]["error"].startswith("no answer in 1.0s")
        assert log[0]["latency_ms"] >= 900

    async def test_410_gone_disables_the_endpoint_and_says_why(self, client, app, receiver):
        endpoint = await subscribe(client, receiver, "gone", ["rapport.customer.*"])
        await publish(app, created(uuid.uuid4()))
        admin = _auth(client._settings, "admin")

        async def disabled() -> dict[str, Any] | None:
            got = (
                await client.get(f"/api/v1/webhook-endpoints/{endpoint['id']}", headers=admin)
            ).json()
            return got if not got["enabled"] else None

        got = await until(disabled)
        assert "410 Gone" in got["disabled_reason"]
        await publish(app, created(uuid.uuid4()))
        await asyncio.sleep(0.3)
        assert len(receiver.hits[endpoint["path"]]) == 1  # nothing more was sent
        assert [a["outcome"] for a in await attempts(client, endpoint)] == ["gone"]

    async def test_retry_after_is_honoured(self, client, app, receiver):
        endpoint = await subscribe(client, receiver, "limited", ["rapport.customer.*"])
        await publish(app, created(uuid.uuid4()))
        hits = await until(
            lambda: (
                len(receiver.hits.get(endpoint["path"], [])) >= 2
                and receiver.hits[endpoint["path"]]
            )
        )
        assert hits[1].at - hits[0].at >= 0.95  # Retry-After: 1, although the schedule says 0.2

    async def test_a_message_is_given_up_after_the_last_attempt(self, make_settings, receiver):
        settings = _settings(make_settings, outbound_retry_schedule_s=[0, 0.1, 0.1])
        async with _own_app(settings) as (app, client):
            endpoint = await subscribe(client, receiver, "broken", ["rapport.customer.*"])
            await publish(app, created(uuid.uuid4()))

            async def given_up() -> list[Any] | None:
                items = (await deliveries(client, endpoint))["items"]
                return items if items and items[0]["status"] == "failed" else None

            [delivery] = await until(given_up)
            assert delivery["attempts"] == 3
            assert delivery["last_status_code"] == 500
            log = await attempts(client, endpoint)
            assert [a["outcome"] for a in log] == ["failed"] * 3
            assert len(log[0]["response_excerpt"]) == 1024  # read up to the cap, no further
            got = await endpoint_state(client, endpoint)
            assert got["enabled"] is True
            assert got["failing_since"] is not None

    async def test_an_endpoint_failing_too_long_is_disabled_with_the_reason(
        self, make_settings, receiver
    ):
        settings = _settings(
            make_settings, outbound_retry_schedule_s=[0, 0.4, 0.4], outbound_disable_after_s=0.2
        )
        async with _own_app(settings) as (app, client):
            endpoint = await subscribe(client, receiver, "broken", ["rapport.customer.*"])
            await publish(app, created(uuid.uuid4()))

            async def disabled() -> dict[str, Any] | None:
                got = await endpoint_state(client, endpoint)
                return got if not got["enabled"] else None

            got = await until(disabled)
            assert got["disabled_reason"].startswith("no successful delivery since")
            assert got["disabled_reason"].endswith("last attempt: failed (HTTP 500)")
            assert len(await attempts(client, endpoint)) == 2
            [delivery] = (await deliveries(client, endpoint))["items"]
            assert delivery["status"] == "pending"  # waits for the endpoint to be enabled
            enabled = await client.patch(
                f"/api/v1/webhook-endpoints/{endpoint['id']}",
                json={"enabled": True},
                headers=_auth(settings, "admin"),
            )
            assert enabled.json()["disabled_reason"] is None
            await until(lambda: _len_at_least(attempts(client, endpoint), 3))


@contextlib.asynccontextmanager
async def _own_app(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    app = create_app(settings)
    async with api_client(app, rollback=False) as client:
        client._settings = settings  # type: ignore[attr-defined]
        try:
            yield app, client
        finally:
            admin = _auth(settings, "admin")
            for item in (await client.get("/api/v1/webhook-endpoints", headers=admin)).json()[
                "items"
            ]:
                await client.delete(f"/api/v1/webhook-endpoints/{item['id']}", headers=admin)


async def deliveries(client: Any, endpoint: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries",
        headers=_auth(client._settings, "admin"),
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def endpoint_state(client: Any, endpoint: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/webhook-endpoints/{endpoint['id']}", headers=_auth(client._settings, "admin")
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _len_at_least(items: Awaitable[list[Any]], n: int) -> list[Any] | None:
    got = await items
    return got if len(got) >= n else None


class TestManagement:
    async def test_rotation_signs_with_old_and_new_secret_during_the_overlap(
        self, client, app, receiver
    ):
        endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.*"])
        old = receiver.secrets[endpoint["path"]][0]
        rotated = await client.post(
            f"/api/v1/webhook-endpoints/{endpoint['id']}/secrets",
            json={"overlap_s": 3600},
            headers=_auth(client._settings, "admin"),
        )
        assert rotated.status_code == 201
        new = rotated.json()["secret"]
        receiver.secrets[endpoint["path"]] = [old, new]
        await publish(app, created(uuid.uuid4()))
        [hit] = await until(lambda: receiver.hits.get(endpoint["path"]))
        assert sorted(hit.verified_by) == sorted([old, new])
        assert len(hit.headers["webhook-signature"].split(" ")) == 2

    async def test_manual_retry_and_replay_send_the_same_message_ids_again(
        self, client, app, receiver
    ):
        endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.*"])
        since = datetime.now(UTC)
        envelopes = await publish(app, created(uuid.uuid4()), created(uuid.uuid4()))
        await until(lambda: len(receiver.hits.get(endpoint["path"], [])) == 2)
        await until(lambda: _len_at_least(attempts(client, endpoint), 2))
        admin = _auth(client._settings, "admin")
        msg = f"msg_{envelopes[0].id.hex}"
        retried = await client.post(
            f"/api/v1/webhook-endpoints/{endpoint['id']}/messages/{msg}/retry", headers=admin
        )
        assert retried.status_code == 202, retried.text
        await until(lambda: len(receiver.hits[endpoint["path"]]) == 3)
        assert receiver.hits[endpoint["path"]][2].headers["webhook-id"] == msg
        await until(lambda: _len_at_least(attempts(client, endpoint), 3))
        replay = await client.post(
            f"/api/v1/webhook-endpoints/{endpoint['id']}/replay",
            json={"since": since.isoformat()},
            headers=admin,
        )
        assert replay.json() == {"queued": 2}
        await until(lambda: len(receiver.hits[endpoint["path"]]) == 5)
        assert [h.headers["webhook-id"] for h in receiver.hits[endpoint["path"]][3:]] == [
            f"msg_{e.id.hex}" for e in envelopes
        ]
        unknown = await client.post(
            f"/api/v1/webhook-endpoints/{endpoint['id']}/messages/msg_{uuid.uuid4().hex}/retry",
            headers=admin,
        )
        assert unknown.status_code == 404

    @pytest.mark.parametrize(
        "url",
        ["http://10.0.0.1/hook", "http://169.254.169.254/latest", "http://[::1]/x", "ftp://x.org/"],
    )
    async def test_unsafe_urls_are_refused(self, client, url):
        response = await client.post(
            "/api/v1/webhook-endpoints",
            json={"url": url, "event_types": ["rapport.order.*"]},
            headers=_auth(client._settings, "admin"),
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["pointer"] == "/body/url"

    async def test_bad_event_types_are_refused(self, client, receiver):
        admin = _auth(client._settings, "admin")
        for types, pointer in (
            (["rapport.*.placed"], "/body/event_types"),
            (["rapport.nothing.*"], "/body/event_types"),
            (["rapport.webhook.*"], "/body/event_types"),
            ([], "/body/event_types"),
        ):
            response = await client.post(
                "/api/v1/webhook-endpoints",
                json={"url": receiver.base + "/ok/x", "event_types": types},
                headers=admin,
            )
            assert response.status_code == 422, (types, response.text)
            assert any(e["pointer"].startswith(pointer) for e in response.json()["errors"])

    async def test_partners_see_only_their_own_endpoints_and_need_the_scope(self, client, receiver):
        settings = client._settings
        body = {"url": receiver.base + "/ok/p", "event_types": ["rapport.order.*"]}
        mine = await client.post(
            "/api/v1/webhook-endpoints", json=body, headers=_auth(settings, "partner", "shop-a")
        )
        assert mine.status_code == 201, mine.text
        assert "ciphertext" not in mine.text
        other = _auth(settings, "partner", "shop-b")
        hidden = await client.get(f"/api/v1/webhook-endpoints/{mine.json()['id']}", headers=other)
        assert hidden.status_code == 404
        assert (await client.get("/api/v1/webhook-endpoints", headers=other)).json()["items"] == []
        analyst = await client.post(
            "/api/v1/webhook-endpoints", json=body, headers=_auth(settings, "analyst")
        )
        assert analyst.status_code == 403
        marketing = await client.post(
            "/api/v1/webhook-endpoints", json=body, headers=_auth(settings, "marketing")
        )
        assert marketing.status_code == 403  # no webhooks:subscribe


class TestPrivacyAndFilters:
    async def test_an_erase_empties_earlier_messages_and_cancels_their_deliveries(
        self, client, app, receiver
    ):
        endpoint = await subscribe(client, receiver, "broken", ["rapport.customer.*"])
        customer = uuid.uuid4()
        [first] = await publish(app, created(customer, "Erase Me"))
        await until(lambda: receiver.hits.get(endpoint["path"]))
        await publish(app, CustomerErased(customer_id=customer, erased_at=datetime.now(UTC)))
        admin = _auth(client._settings, "admin")
        retry = await client.post(
            f"/api/v1/webhook-endpoints/{endpoint['id']}/messages/msg_{first.id.hex}/retry",
            headers=admin,
        )
        assert retry.status_code == 409

        async def settled() -> dict[str, str] | None:
            items = (await deliveries(client, endpoint))["items"]
            found = {d["message_id"]: d["status"] for d in items}
            return found if found.get(f"msg_{first.id.hex}") == "cancelled" else None

        # (an attempt in flight at the erase finishes, and is then cancelled, not retried)
        statuses = await until(settled)
        assert len(statuses) == 2  # the erase itself is delivered: partners must erase too
        async with app.state.database.session() as session:
            payloads = (
                (
                    await session.execute(
                        text("SELECT payload FROM gateway.outbound_message WHERE customer_id = :c"),
                        {"c": customer},
                    )
                )
                .scalars()
                .all()
            )
        assert all(b"Erase Me" not in bytes(p) for p in payloads)

    async def test_a_segment_filter_sends_only_members_events(self, client, app, receiver):
        segment = uuid.uuid4()
        endpoint = await subscribe(
            client, receiver, "ok", ["rapport.customer.updated.v1"], segment_id=str(segment)
        )
        member, stranger = uuid.uuid4(), uuid.uuid4()

        def changed(c: uuid.UUID) -> Event:
            return CustomerUpdated(customer_id=c, changes={"t": 1}, updated_at=datetime.now(UTC))

        await publish(
            app,
            SegmentEntered(customer_id=member, segment_id=segment, entered_at=datetime.now(UTC)),
            changed(member),
            changed(stranger),
        )
        [hit] = await until(lambda: receiver.hits.get(endpoint["path"]))
        await asyncio.sleep(0.3)
        assert len(receiver.hits[endpoint["path"]]) == 1
        assert str(member).encode() in hit.body


async def _send(settings: Settings, envelope: Envelope) -> Any:
    """Put ``envelope`` on the broker as a part's relay would; returns its record metadata."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        return await producer.send_and_wait(
            envelope.topic,
            value=envelope.data,
            key=envelope.key,
            headers=envelope.kafka_headers(),
        )
    finally:
        await producer.stop()


async def test_events_on_the_broker_reach_the_endpoint(make_settings, receiver):
    settings = _settings(make_settings, consumers_enabled=True)
    async with _own_app(settings) as (app, client):
        endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.created.v1"])
        await asyncio.wait_for(app.state.gateway.outbound.fanout.assigned.wait(), 30)
        envelope = Envelope.wrap(created(uuid.uuid4(), "Via Kafka"), source="/test")
        await _send(settings, envelope)
        [hit] = await until(lambda: receiver.hits.get(endpoint["path"]), timeout=30)
        assert hit.verified_by
        assert hit.headers["webhook-id"] == f"msg_{envelope.id.hex}"


async def test_stopping_finishes_the_batch_at_hand_and_commits_it(make_settings, receiver):
    """A stop while a batch is being written waits for it and commits its offsets, so the
    next member starts after it (a cancelled batch would be read and written again)."""
    settings = _settings(make_settings, consumers_enabled=True)
    async with _own_app(settings) as (app, client):
        fanout = app.state.gateway.outbound.fanout
        await subscribe(client, receiver, "ok", ["rapport.customer.created.v1"])
        await asyncio.wait_for(fanout.assigned.wait(), 30)
        envelope = Envelope.wrap(created(uuid.uuid4(), "Mid-batch"), source="/test")
        async with app.state.database.session() as blocker:
            # the batch's message insert waits behind this lock until the stop has begun
            await blocker.execute(text("LOCK TABLE gateway.outbound_message IN EXCLUSIVE MODE"))
            sent = await _send(settings, envelope)
            await asyncio.sleep(1.0)  # fetched, and blocked on the insert
            stopping = asyncio.create_task(fanout.stop(timeout=30))
            await asyncio.sleep(0.5)
            assert not stopping.done()  # waiting for the batch, not cancelling it
        await asyncio.wait_for(stopping, 30)
        async with app.state.database.session() as session:
            queued = await session.scalar(
                text("SELECT count(*) FROM gateway.outbound_message WHERE id = :id"),
                {"id": f"msg_{envelope.id.hex}"},
            )
        assert queued == 1
        probe = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=GROUP,
            enable_auto_commit=False,
        )
        await probe.start()
        try:
            committed = await probe.committed(TopicPartition(sent.topic, sent.partition))
        finally:
            await probe.stop()
        assert committed == sent.offset + 1


async def test_a_delivery_continues_the_events_trace(
    client, app, receiver, spans: InMemorySpanExporter
):
    endpoint = await subscribe(client, receiver, "ok", ["rapport.customer.*"])
    trace_id, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    envelope = Envelope.wrap(
        created(uuid.uuid4()),
        source="/test",
        extensions={"traceparent": f"00-{trace_id}-{parent_span}-01"},
    )
    await app.state.gateway.outbound.fanout.apply([envelope])
    [hit] = await until(lambda: receiver.hits.get(endpoint["path"]))
    _, sent_trace, sent_span, _ = hit.headers["traceparent"].split("-")
    assert sent_trace == trace_id
    client_spans = await until(
        lambda: [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    )
    [span] = client_spans
    assert span.name == "webhook rapport.customer.created.v1"
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_span
    assert format(span.context.span_id, "016x") == sent_span
