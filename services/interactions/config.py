from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings, check_http_url

WebhookFormat = Literal["email-events", "conversations", "web-tracking"]

_FORMATS: dict[str, WebhookFormat] = {
    "sendgrid": "email-events",
    "email-events": "email-events",
    "conversations": "conversations",
    "calls": "conversations",
    "chat": "conversations",
    "segment": "web-tracking",
    "web-tracking": "web-tracking",
}


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="INTERACTIONS_", extra="ignore")
    service_name: ClassVar[str] = "interactions"

    port: int = 8002
    #: The SLA scheduler (every replica runs one; they share the work safely).
    sla_scheduler_enabled: bool = True
    sla_scheduler_interval_s: float = 30.0
    #: Where customer360 answers ``POST /customers:resolve`` (partner webhooks name people
    #: by e-mail or phone only).
    customer360_url: str = "http://127.0.0.1:8001"
    customer360_timeout_s: float = 5.0
    #: Partner webhook sources (as registered at the gateway) this service maps to
    #: interactions, and the payload format of each (see interaction/partners.py). Sources
    #: not listed are left to other services. JSON in the environment:
    #: ``INTERACTIONS_WEBHOOK_FORMATS='{"mailer": "email-events"}'``.
    webhook_formats: dict[str, WebhookFormat] = Field(default_factory=lambda: dict(_FORMATS))
    #: The care-plan scheduler (rules → tasks/events, and TaskDue); safe on every replica.
    care_plan_scheduler_enabled: bool = True
    care_plan_scheduler_interval_s: float = 60.0
    #: Occasions missed for longer than this (downtime) are skipped, not replayed.
    care_plan_catch_up_days: int = Field(default=7, ge=0, le=366)

    _urls = field_validator("customer360_url")(check_http_url)
