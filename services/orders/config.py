from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings, check_http_url


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_", extra="ignore")
    service_name: ClassVar[str] = "orders"

    port: int = 8003
    #: Where customer360 answers ``POST /customers:resolve``: partner orders carry only an
    #: e-mail, a phone or the platform's customer id.
    customer360_url: str = "http://127.0.0.1:8001"
    customer360_timeout_s: float = 5.0
    #: How often the loyalty tiers are evaluated (downgrades after the grace period need a
    #: pass); 0 turns the periodic pass off (``POST /loyalty/tiers:evaluate`` still works).
    loyalty_evaluation_interval_s: float = Field(default=3600.0, ge=0)
    #: How long a partner action (paid, cancelled, refunded) stays parked waiting for its
    #: ``order.created`` (a refund: for the order's payment); then it is reported failed and
    #: its payload cleared (replay it from the gateway's log once the order exists).
    partner_parked_ttl_s: float = Field(default=604800.0, gt=0)
    #: How often parked partner actions older than ``ORDERS_PARTNER_PARKED_TTL_S`` are given
    #: up; 0 turns the periodic pass off.
    partner_expiry_interval_s: float = Field(default=3600.0, ge=0)

    _urls = field_validator("customer360_url")(check_http_url)
