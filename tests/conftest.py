"""Test infrastructure: a real PostgreSQL and a real Kafka-protocol broker for the session.

* PostgreSQL: ``TEST_DATABASE_URL`` (a server URL whose user may create databases) or else
  the embedded server under ``.rapport/test/pg``. Each test session gets a fresh database,
  migrated with every part's Alembic migrations (so tests also prove the migrations).
* Broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else real Apache Kafka (KRaft, jars fetched with
  Maven) when Java and Maven are present; else the embedded Tansu broker, with a notice.
  ``RAPPORT_REQUIRE_KAFKA=1`` (CI) turns the Tansu fallback into an error.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import make_url

from shared import tracing
from shared.devstack import ApacheKafka, EmbeddedPostgres, TansuBroker
from shared.events import TOPICS
from shared.messaging import ensure_topics
from shared.migrate import upgrade_all
from shared.parts import PARTS
from shared.settings import RapportSettings

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".rapport" / "test"

S = TypeVar("S", bound=RapportSettings)


@dataclass
class Infra:
    database_url: str
    bootstrap_servers: str
    broker: TansuBroker | ApacheKafka | None
    postgres: EmbeddedPostgres | None
    supports_idempotence: bool
    server_url: str | None = None

    def create_database(self, name: str) -> str:
        """A new empty database on the test server; returns its SQLAlchemy URL."""
        if self.postgres is not None:
            self.postgres.create_database(name)
            return self.postgres.sqlalchemy_url(name)
        assert self.server_url is not None
        base = make_url(self.server_url)
        _admin_exec(
            base.set(database="postgres").render_as_string(False), f'CREATE DATABASE "{name}"'
        )
        return base.set(database=name).render_as_string(False)

    def drop_database(self, name: str) -> None:
        if self.postgres is not None:
            self.postgres.drop_database(name)
            return
        assert self.server_url is not None
        base = make_url(self.server_url)
        _admin_exec(
            base.set(database="postgres").render_as_string(False),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        )


def _start_broker() -> tuple[str, TansuBroker | ApacheKafka | None, bool]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return external, None, os.environ.get("RAPPORT_KAFKA_IDEMPOTENT_PRODUCER", "1") != "0"
    if ApacheKafka.available():
        kafka = ApacheKafka(STATE / "kafka")
        shutil.rmtree(kafka.data_dir, ignore_errors=True)  # every session starts empty
        kafka.start()
        return kafka.bootstrap_servers, kafka, True
    if os.environ.get("RAPPORT_REQUIRE_KAFKA") == "1":
        pytest.exit("RAPPORT_REQUIRE_KAFKA=1 but Java/Maven are missing", returncode=3)
    warnings.warn(
        "Java or Maven not found: broker tests run against the embedded Tansu broker, "
        "not Apache Kafka",
        stacklevel=1,
    )
    tansu = TansuBroker(STATE / "tansu")
    tansu.start()
    return tansu.bootstrap_servers, tansu, False


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    STATE.mkdir(parents=True, exist_ok=True)
    postgres: EmbeddedPostgres | None = None
    broker: TansuBroker | ApacheKafka | None = None
    infra: Infra | None = None
    name = f"rapport_test_{uuid.uuid4().hex[:8]}"
    server_url = os.environ.get("TEST_DATABASE_URL")
    try:
        if not server_url:
            postgres = EmbeddedPostgres(STATE / "pg")
            postgres.start()
        bootstrap, broker, idempotence = _start_broker()
        infra = Infra("", bootstrap, broker, postgres, idempotence, server_url)
        infra.database_url = infra.create_database(name)
        asyncio.run(
            ensure_topics(
                RapportSettings(kafka_bootstrap_servers=bootstrap), [*TOPICS, "rapport.test"]
            )
        )
        upgrade_all({p.name: infra.database_url for p in PARTS})
        yield infra
    finally:
        if broker is not None:
            broker.stop()
        if infra is not None:
            infra.drop_database(name)
        if postgres is not None:
            postgres.stop()


def _admin_exec(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def make_settings(infra: Infra) -> Callable[..., Any]:
    """Settings of a part pointed at the test database and broker.

    The relay, consumers, the gateway's outbound webhook sender and interactions' campaign
    sender are off unless a test turns them on: API tests run inside a transaction that is
    rolled back, and events are tested on their own.
    """

    def build(cls: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": infra.database_url,
            "kafka_bootstrap_servers": infra.bootstrap_servers,
            "kafka_idempotent_producer": infra.supports_idempotence,
            "outbox_relay_enabled": False,
            "consumers_enabled": False,
            "outbound_enabled": False,
            "campaign_sender_enabled": False,
            "kafka_create_topics": False,
            "log_json": False,
            "outbox_poll_interval_s": 0.05,
            "consumer_retry_backoff_s": 0.01,
        }
        values.update(overrides)
        return cls(**values)

    return build


# --- tracing into memory (tests that want spans ask for the ``spans`` fixture) -------------
SPAN_EXPORTER = InMemorySpanExporter()
_INSTALLED: list[TracerProvider] = []


class _WhileEnabled(SimpleSpanProcessor):
    """Once installed, FastAPI traces every request of the session; keep only this test's."""

    def on_end(self, span: ReadableSpan) -> None:
        if tracing.enabled():
            super().on_end(span)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory. A process has one tracer provider: installed once, then
    switched on and off around each test that wants spans."""
    if not _INSTALLED:
        provider = TracerProvider()
        provider.add_span_processor(_WhileEnabled(SPAN_EXPORTER))
        tracing.use_provider(provider)
        _INSTALLED.append(provider)
    tracing.set_enabled(True)
    SPAN_EXPORTER.clear()
    try:
        yield SPAN_EXPORTER
    finally:
        tracing.set_enabled(False)
