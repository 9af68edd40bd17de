import hashlib
import hmac
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import Environment, RapportSettings, check_http_url

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


_HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"
DEV_PROVIDER_SECRET = "whsec_cmFwcG9ydC1kZXYtcHJvdmlkZXItc2VjcmV0"  # noqa: S105 - likewise


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
    #: Where segmentation answers ``GET /segments/{id}`` (a campaign's segment is checked
    #: there when the campaign is saved).
    segmentation_url: str = "http://127.0.0.1:8004"
    segmentation_timeout_s: float = 5.0
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

    #: The campaign sender (queued campaign messages → SMTP / the HTTP provider); safe on
    #: every replica.
    campaign_sender_enabled: bool = True
    #: How often an idle campaign sender looks for due messages and scheduled campaigns.
    campaign_sender_interval_s: float = 5.0
    #: Messages one sender sends at once (each on its own SMTP connection / HTTP request).
    campaign_sender_concurrency: int = Field(default=4, ge=1, le=64)
    #: A message claimed for sending longer than this without an answer is marked
    #: ``unconfirmed`` (possibly delivered) and never resent: keep it above the SMTP timeout.
    campaign_send_lease_s: float = Field(default=120.0, gt=0)
    #: Sending attempts of a message before a temporary failure becomes ``failed``.
    campaign_max_attempts: int = Field(default=5, ge=1)
    #: First retry delay after a temporary failure; doubles with each attempt.
    campaign_retry_backoff_s: float = Field(default=30.0, ge=0)
    #: Messages per second each provider (SMTP, the SMS/webhook provider) is sent, per sender.
    campaign_rate_per_s: float = Field(default=50.0, gt=0)
    #: Frequency cap: at most this many campaign messages per customer, across campaigns,
    #: within ``campaign_frequency_days``.
    campaign_frequency_cap: int = Field(default=3, ge=1)
    #: The window of the frequency cap, in days.
    campaign_frequency_days: int = Field(default=7, ge=1)
    #: Quiet hours in the customer's local time (UTC when unknown): messages falling in
    #: ``start`` to ``end`` (``HH:MM``) wait for ``end``. Equal values switch quiet hours off.
    campaign_quiet_start: str = Field(default="21:00", pattern=_HH_MM)
    #: End of the quiet hours, ``HH:MM`` (see ``campaign_quiet_start``).
    campaign_quiet_end: str = Field(default="08:00", pattern=_HH_MM)
    #: SMTP server of campaign e-mail.
    smtp_host: str = "127.0.0.1"
    #: SMTP port (587 with STARTTLS, 465 with implicit TLS, 25/1025 plain).
    smtp_port: int = 1025
    #: SMTP user (empty: no AUTH).
    smtp_username: str = ""
    #: SMTP password.
    smtp_password: str = ""
    #: ``none``, ``starttls`` or ``tls`` (implicit TLS).
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    #: SMTP timeout of one connection or command.
    smtp_timeout_s: float = 30.0
    #: The ``From`` of campaign e-mail (also the domain of its ``Message-ID``).
    smtp_from: str = "Rapport <campaigns@rapport.invalid>"
    #: The SMS / partner-channel provider: campaign messages are POSTed here as JSON, signed
    #: with Standard Webhooks headers (empty: those channels cannot send).
    campaign_provider_url: str = ""
    #: The ``whsec_…`` secret that signs provider requests.
    campaign_provider_secret: str = DEV_PROVIDER_SECRET

    #: Public base URL of the signed tracking links (open pixel, clicks, unsubscribe) as
    #: reached through the gateway; empty: messages go out without tracking.
    campaign_tracking_base_url: str = "http://127.0.0.1:8000/api/v1/campaign-links"
    #: HMAC secret that signs tracking links (empty: derived from the internal token secret;
    #: set, at least 32 characters in production).
    campaign_tracking_secret: str = ""

    _urls = field_validator("customer360_url", "segmentation_url")(check_http_url)

    @property
    def tracking_secret(self) -> str:
        """The key of tracking links: the setting, else one derived from the internal token
        secret (so production needs no extra secret; rotating that one voids old links)."""
        if self.campaign_tracking_secret:
            return self.campaign_tracking_secret
        return hmac.new(
            self.internal_token_secret.encode(), b"rapport-campaign-tracking", hashlib.sha256
        ).hexdigest()

    @model_validator(mode="after")
    def _refuse_dev_campaign_secrets(self) -> "Settings":
        if self.environment == Environment.PRODUCTION:
            if self.campaign_tracking_secret and len(self.campaign_tracking_secret) < 32:
                raise ValueError(
                    "INTERACTIONS_CAMPAIGN_TRACKING_SECRET must be a random value of at least "
                    "32 characters in production (or empty)"
                )
            if self.campaign_provider_url and self.campaign_provider_secret == DEV_PROVIDER_SECRET:
                raise ValueError(
                    "INTERACTIONS_CAMPAIGN_PROVIDER_SECRET must be set in production when "
                    "INTERACTIONS_CAMPAIGN_PROVIDER_URL is"
                )
        return self
