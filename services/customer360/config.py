from typing import ClassVar

from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings, check_http_url


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="CUSTOMER360_", extra="ignore")
    service_name: ClassVar[str] = "customer360"

    port: int = 8001
    #: ISO 3166 region used to read phone numbers written without ``+`` (e.g. ``CN``);
    #: unset, such numbers are refused as ambiguous.
    default_phone_region: str | None = None
    #: Where the other services answer, for the privacy export (the one place customer360
    #: calls them: a rare, admin-initiated request that must be complete and current).
    interactions_url: str = "http://127.0.0.1:8002"
    orders_url: str = "http://127.0.0.1:8003"
    segmentation_url: str = "http://127.0.0.1:8004"
    export_timeout_s: float = 10.0

    _urls = field_validator("interactions_url", "orders_url", "segmentation_url")(check_http_url)
