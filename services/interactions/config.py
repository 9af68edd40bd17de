from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="INTERACTIONS_", extra="ignore")
    service_name: ClassVar[str] = "interactions"

    port: int = 8002
    #: The SLA scheduler (every replica runs one; they share the work safely).
    sla_scheduler_enabled: bool = True
    sla_scheduler_interval_s: float = 30.0
    #: The care-plan scheduler (rules → tasks/events, and TaskDue); safe on every replica.
    care_plan_scheduler_enabled: bool = True
    care_plan_scheduler_interval_s: float = 60.0
    #: Occasions missed for longer than this (downtime) are skipped, not replayed.
    care_plan_catch_up_days: int = Field(default=7, ge=0, le=366)
