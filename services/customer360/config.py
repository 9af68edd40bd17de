from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="CUSTOMER360_", extra="ignore")
    service_name: ClassVar[str] = "customer360"

    port: int = 8001
    #: ISO 3166 region used to read phone numbers written without ``+`` (e.g. ``CN``);
    #: unset, such numbers are refused as ambiguous.
    default_phone_region: str | None = None
