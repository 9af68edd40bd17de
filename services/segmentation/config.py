from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")
    service_name: ClassVar[str] = "segmentation"

    port: int = 8004
