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
from typing import Any, ClassVar

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["DEV_INTERNAL_SECRET", "Environment", "RapportSettings"]

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

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport"
    #: Connections kept open. Keep it above the usual concurrency: SQLAlchemy closes overflow
    #: connections on return, and opening one (a PostgreSQL backend fork) costs milliseconds.
    database_pool_size: int = 30
    database_max_overflow: int = 20
    database_echo: bool = False

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: Idempotent producer (and acks=all). Tansu, the embedded dev broker, does not support
    #: InitProducerId, so the dev stack turns this off; it stays on for real Kafka.
    kafka_idempotent_producer: bool = True
    kafka_topic_partitions: int = 6
    #: Replicas of the topics Rapport creates (3 on a production cluster).
    kafka_topic_replication_factor: int = Field(default=1, ge=1)
    kafka_create_topics: bool = True
    kafka_fetch_max_wait_ms: int = 20
    kafka_session_timeout_ms: int = 10_000

    outbox_relay_enabled: bool = True
    outbox_batch_size: int = 2_000
    outbox_poll_interval_s: float = 0.5
    consumers_enabled: bool = True
    consumer_max_retries: int = 3
    consumer_retry_backoff_s: float = 0.2

    #: On SIGTERM the part stops accepting connections and gives in-flight requests this long
    #: to finish (then cancels them) …
    shutdown_request_timeout_s: float = Field(default=15.0, ge=0)
    #: … then gives its consumers (finish the current event, commit offsets) and its outbox
    #: relay (send every committed event) this long together. Keep the sum below the
    #: orchestrator's kill deadline (Kubernetes: terminationGracePeriodSeconds, 30 s).
    shutdown_drain_timeout_s: float = Field(default=10.0, ge=0)

    #: HMAC secret for the short-lived internal tokens the gateway mints for services.
    internal_token_secret: str = DEV_INTERNAL_SECRET
    internal_token_ttl_s: int = 120

    max_body_bytes: int = Field(default=1_048_576, description="Largest request body accepted.")
    max_upload_bytes: int = Field(
        default=4 * 1024**3, description="Largest file upload (imports), streamed to disk."
    )

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
