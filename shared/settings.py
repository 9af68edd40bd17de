"""Settings: one base for every part, a subclass per part with its own environment prefix.

Resolution order for a field ``database_url`` of the orders service:
``ORDERS_DATABASE_URL`` → ``RAPPORT_DATABASE_URL`` → ``DATABASE_URL`` → default. So ops can
give each service its own database, or point all of them at one, without code changes. Only
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` are read without a prefix: they are the names
everybody expects, and unprefixed generic names (``PORT``) would collide with other software.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "DEV_INTERNAL_SECRET",
    "ConfigurationError",
    "Environment",
    "RapportSettings",
    "check_http_url",
    "load_settings",
]

DEV_INTERNAL_SECRET = "rapport-dev-internal-secret-change-me"  # noqa: S105 - refused outside dev


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class _UnprefixedEnv(PydanticBaseSettingsSource):
    """Reads the few well-known unprefixed variables (``DATABASE_URL`` …)."""

    NAMES: ClassVar[dict[str, str]] = {
        "database_url": "DATABASE_URL",
        "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        name = self.NAMES.get(field_name)
        return (os.environ.get(name) if name else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            field: os.environ[env]
            for field, env in self.NAMES.items()
            if field in self.settings_cls.model_fields and os.environ.get(env)
        }


class RapportSettings(BaseSettings):
    """What every part of Rapport is configured with."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", extra="ignore")

    #: Name of the part (``orders``, ``gateway``…): its schema, consumer group and event source.
    service_name: ClassVar[str] = "rapport"

    #: ``development``, ``test`` or ``production``; production refuses development secrets.
    environment: Environment = Environment.DEVELOPMENT
    #: Address the part listens on (the container image sets ``0.0.0.0``).
    host: str = "127.0.0.1"
    #: Port the part listens on (1 to 65535; each part has its own default).
    port: int = 8000
    #: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``.
    log_level: str = "INFO"
    #: One JSON object per log line; ``false``: plain text.
    log_json: bool = True

    #: SQLAlchemy URL of the part's database, ``postgresql+asyncpg://user:pw@host:5432/db``.
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport"
    #: Connections kept open. Keep it above the usual concurrency: SQLAlchemy closes overflow
    #: connections on return, and opening one (a PostgreSQL backend fork) costs milliseconds.
    database_pool_size: int = Field(default=30, ge=1)
    #: Extra connections opened under load beyond the pool (closed on return).
    database_max_overflow: int = Field(default=20, ge=0)
    #: Log every SQL statement (debugging only).
    database_echo: bool = False

    #: Kafka brokers, ``host:port[,host:port…]``.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: Idempotent producer (and acks=all). Tansu, the embedded dev broker, does not support
    #: InitProducerId, so the dev stack turns this off; it stays on for real Kafka.
    kafka_idempotent_producer: bool = True
    #: Partitions of the topics Rapport creates (the most consumer replicas that get work).
    kafka_topic_partitions: int = Field(default=6, ge=1)
    #: Replicas of the topics Rapport creates (3 on a production cluster).
    kafka_topic_replication_factor: int = Field(default=1, ge=1)
    #: Create missing topics at start-up; ``false`` when ops manage topics.
    kafka_create_topics: bool = True
    #: Consumer ``fetch.max.wait.ms``: latency vs. broker round trips when idle.
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=0)
    #: Consumer group session timeout: how soon a dead replica's partitions move.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1)

    #: Relay outbox rows to Kafka from this process (one leader across replicas).
    outbox_relay_enabled: bool = True
    #: Most outbox rows sent per relay batch.
    outbox_batch_size: int = Field(default=2_000, ge=1)
    #: How often the relay looks for rows when no commit woke it.
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    #: Run this part's event consumers in this process.
    consumers_enabled: bool = True
    #: Attempts at a failing event before it goes to the dead-letter topic.
    consumer_max_retries: int = Field(default=3, ge=0)
    #: First delay between those attempts (doubling).
    consumer_retry_backoff_s: float = Field(default=0.2, ge=0)
    #: A consumer stuck this long in one step (a fetch, a commit, one event) is restarted.
    consumer_stall_timeout_s: float = Field(default=60.0, gt=0)

    #: On SIGTERM the part stops accepting connections and gives in-flight requests this long
    #: to finish (then cancels them) …
    shutdown_request_timeout_s: float = Field(default=15.0, ge=0)
    #: … then gives its consumers (finish the current event, commit offsets) and its outbox
    #: relay (send every committed event) this long together. Keep the sum below the
    #: orchestrator's kill deadline (Kubernetes: terminationGracePeriodSeconds, 30 s).
    shutdown_drain_timeout_s: float = Field(default=10.0, ge=0)

    #: HMAC secret for the short-lived internal tokens the gateway mints for services.
    internal_token_secret: str = DEV_INTERNAL_SECRET
    #: Lifetime of an internal token.
    internal_token_ttl_s: int = Field(default=120, ge=1)

    #: Largest request body accepted (larger: 413).
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    #: Largest file upload (imports), streamed to disk.
    max_upload_bytes: int = Field(default=4 * 1024**3, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = str(settings_cls.model_config.get("env_prefix") or "")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if prefix != "RAPPORT_":
            sources.append(EnvSettingsSource(settings_cls, env_prefix="RAPPORT_"))
        sources += [_UnprefixedEnv(settings_cls), dotenv_settings, file_secret_settings]
        return tuple(sources)

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        # A validator rather than a Field bound: each part redeclares ``port`` with its default.
        if not 1 <= value <= 65_535:
            raise ValueError("must be a TCP port, 1 to 65535")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if scheme != "postgresql+asyncpg" or not urlsplit(value).hostname:
            raise ValueError(
                "must be a SQLAlchemy asyncpg URL with a host, "
                "postgresql+asyncpg://user:password@host:5432/database"
            )
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"must be host:port[,host:port…]; {server.strip()!r} is not")
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> RapportSettings:
        if self.environment == Environment.PRODUCTION and (
            self.internal_token_secret == DEV_INTERNAL_SECRET
            or len(self.internal_token_secret) < 32
        ):
            raise ValueError(
                "RAPPORT_INTERNAL_TOKEN_SECRET must be set to a random value of at least "
                "32 characters in production"
            )
        return self

    @property
    def schema_name(self) -> str:
        return self.service_name


_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

S = TypeVar("S", bound=RapportSettings)


class ConfigurationError(Exception):
    """Settings that cannot be used; the message names the environment variables."""


def check_http_url(value: str) -> str:
    """For ``*_url`` settings naming another part: an http(s) URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def load_settings(settings_cls: type[S]) -> S:
    """``settings_cls()``, or a :class:`ConfigurationError` that says, per problem, which
    environment variable to fix (instead of pydantic's field paths)."""
    try:
        return settings_cls()
    except ValidationError as exc:
        prefix = str(settings_cls.model_config.get("env_prefix") or "RAPPORT_")
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:
                field = str(error["loc"][0])
                names = [f"{prefix}{field}".upper()]
                if field in RapportSettings.model_fields and prefix != "RAPPORT_":
                    names.append(f"RAPPORT_{field}".upper())
                if field in _UnprefixedEnv.NAMES:
                    names.append(_UnprefixedEnv.NAMES[field])
                message = f"{' / '.join(names)}: {message}"
            lines.append(f"  {message}")
        part = settings_cls.service_name
        raise ConfigurationError(f"invalid configuration of {part}:\n" + "\n".join(lines)) from None
