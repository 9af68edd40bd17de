"""OpenTelemetry: one trace from a client through the gateway, customer360, its outbox and
Kafka, to a consumer — recorded with an in-memory exporter, the parts really talking HTTP and
Kafka. And with tracing off (the default) nothing is recorded, but logs still carry the
caller's trace id."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings as GatewaySettings
from gateway.main import create_app as create_gateway
from services.customer360.config import Settings
from services.customer360.main import create_app
from shared import tracing
from shared.events import CUSTOMER_TOPIC, CustomerCreated, Envelope
from shared.logging import JsonFormatter, trace_id_var
from shared.messaging import ConsumerRunner, Producer, Subscriptions
from tests.conftest import SPAN_EXPORTER
from tests.gateway.edge.servers import serve
from tests.shared.kafka_tail import tail
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _parent(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _one(
    spans: list[ReadableSpan], kind: SpanKind, name: str | None = None, **attributes: object
) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.kind == kind
        and (name is None or s.name == name)
        and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, [(s.name, s.kind, dict(s.attributes or {})) for s in spans]
    return found[0]


@pytest.mark.kafka
async def test_one_trace_follows_a_request_from_the_gateway_through_kafka_to_a_consumer(
    spans, make_settings, infra
) -> None:
    customer360 = create_app(make_settings(Settings, outbox_relay_enabled=True))
    async with serve(customer360) as upstream:
        gateway_settings = make_settings(GatewaySettings, customer360_url=upstream)
        gateway = create_gateway(gateway_settings)
        token = mint_dev_token(gateway_settings, role="admin", subject="tracer")
        async with (
            tail(infra.bootstrap_servers, CUSTOMER_TOPIC) as topic,
            api_client(gateway, rollback=False) as client,
        ):
            response = await client.post(
                "/api/v1/customers",
                json={"display_name": "陈静", "emails": [f"{uuid.uuid4().hex}@trace.example"]},
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
                },
            )
            assert response.status_code == 201, response.text
            customer_id = response.json()["id"]
            [message] = await topic.wait_for(customer_id, count=1)
    headers = {k: v.decode() for k, v in message.headers}

    # The consumer (a group of its own, reading from the start) continues the trace.
    seen: dict[str, str | None] = {}
    subscriptions = Subscriptions()

    @subscriptions.on(CustomerCreated)
    async def record(session: AsyncSession, event: CustomerCreated, envelope: Envelope) -> None:
        if str(event.customer_id) == customer_id:
            seen["trace_id"] = trace_id_var.get()  # what the logs of the handler carry

    settings = make_settings(Settings)
    consumer_app = create_app(settings)
    producer = Producer(settings)
    async with api_client(consumer_app, rollback=False):
        runner = ConsumerRunner(
            group=f"trace-{uuid.uuid4().hex[:8]}",
            bootstrap_servers=infra.bootstrap_servers,
            database=consumer_app.state.database,
            subscriptions=subscriptions,
            producer=producer,
        )
        runner.start()
        try:
            async with asyncio.timeout(60):
                while "trace_id" not in seen:
                    await asyncio.sleep(0.1)
        finally:
            await runner.stop(timeout=5)
            await producer.stop()

    # Only this trace's spans: the session's other parts (a relay, a consumer of an earlier
    # test still winding down) may record spans of their own while tracing is on. That
    # each span below is found exactly once among them is what shows the chain is one trace.
    finished = [s for s in spans.get_finished_spans() if _hex(s.context.trace_id, 32) == TRACE_ID]
    gateway_span = _one(
        finished, SpanKind.SERVER, **{"rapport.part": "gateway", "url.path": "/api/v1/customers"}
    )
    service_span = _one(
        finished, SpanKind.SERVER, **{"rapport.part": "customer360", "http.route": "/customers"}
    )
    producer_span = _one(finished, SpanKind.PRODUCER, **{"rapport.part": "customer360"})
    consumer_span = _one(finished, SpanKind.CONSUMER, **{"messaging.message.id": headers["ce_id"]})
    endpoint_span = _one(
        finished,
        SpanKind.INTERNAL,
        "fastapi.endpoint",
        **{"code.function.name": "services.customer360.customer.endpoints.create_customer"},
    )
    assert _hex(_parent(gateway_span), 16) == CLIENT_SPAN
    assert _parent(service_span) == gateway_span.context.span_id
    # FastAPI's own spans sit between: the endpoint's span is the service span's child, and
    # the events were queued inside the endpoint.
    assert _parent(endpoint_span) == service_span.context.span_id
    assert _parent(producer_span) == endpoint_span.context.span_id
    assert _parent(consumer_span) == producer_span.context.span_id
    # The message carries the producer span as its parent, in a W3C traceparent header.
    assert headers["traceparent"] == f"00-{TRACE_ID}-{_hex(producer_span.context.span_id, 16)}-01"
    assert gateway_span.name == "POST /api/v1/customers/…"  # the edge's route template
    assert service_span.name == "POST /customers"
    assert _attrs(service_span)["http.response.status_code"] == 201
    assert producer_span.name == f"create {CUSTOMER_TOPIC}"
    assert consumer_span.name == "process rapport.customer.created.v1"
    assert _attrs(consumer_span)["rapport.outcome"] == "applied"
    assert seen["trace_id"] == TRACE_ID


class _JsonLines(logging.Handler):
    """Formats at emit time, while the request's context variables are set."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("customer360"))
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_tracing_off_records_nothing_but_logs_keep_the_callers_trace_id(
    make_settings,
) -> None:
    assert not tracing.enabled()
    before = len(SPAN_EXPORTER.get_finished_spans())
    app = create_app(make_settings(Settings))
    access = logging.getLogger("rapport.access")
    handler = _JsonLines()
    async with api_client(app) as client:
        access.addHandler(handler)
        try:
            response = await client.get(
                "/customers/not-a-uuid",
                headers={
                    **bearer("customers:read"),
                    "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
                    "X-Request-ID": "req-42",
                },
            )
        finally:
            access.removeHandler(handler)
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "req-42"
    assert len(SPAN_EXPORTER.get_finished_spans()) == before
    [line] = handler.lines
    assert line["trace_id"] == TRACE_ID
    assert line["request_id"] == "req-42"
    assert line["level"] == "info"
    assert line["message"].startswith("GET /customers/not-a-uuid 422")
