from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")
    service_name: ClassVar[str] = "segmentation"

    port: int = 8004
    #: Re-evaluate customers whose time-relative rules may have changed their answer.
    membership_scheduler_enabled: bool = True
    membership_scheduler_interval_s: float = 60.0
