from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="CUSTOMER360_", extra="ignore")
    service_name: ClassVar[str] = "customer360"

    port: int = 8001
