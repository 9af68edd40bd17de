from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="INTERACTIONS_", extra="ignore")
    service_name: ClassVar[str] = "interactions"

    port: int = 8002
    #: The SLA scheduler (every replica runs one; they share the work safely).
    sla_scheduler_enabled: bool = True
    sla_scheduler_interval_s: float = 30.0
