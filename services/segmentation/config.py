from decimal import Decimal
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import RapportSettings


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")
    service_name: ClassVar[str] = "segmentation"

    port: int = 8004
    #: Re-evaluate customers whose time-relative rules may have changed their answer.
    membership_scheduler_enabled: bool = True
    #: How often that scheduler looks for customers due a re-evaluation, in seconds.
    membership_scheduler_interval_s: float = Field(default=60.0, gt=0)

    # --- built-in analytics (services/segmentation/analytics) ------------------------------
    #: The batch pass (new RFM quintile boundaries, then every customer rescored). Every
    #: replica runs a scheduler; a pass is skipped when another one ran less than
    #: ``analytics_recompute_interval_s`` ago, so replicas share the work.
    analytics_scheduler_enabled: bool = True
    analytics_recompute_interval_s: float = Field(default=3600.0, gt=0)
    #: Customers rescored per transaction in a batch pass (bounds locks and memory).
    analytics_batch_size: int = Field(default=1000, ge=1, le=100_000)
    #: Lifecycle: more days than this since the last order → ``at_risk``.
    lifecycle_at_risk_days: int = Field(default=90, ge=1)
    #: Lifecycle: more days than this since the last order → ``churned``.
    lifecycle_churned_days: int = Field(default=365, ge=1)
    #: Lifecycle: at least this many orders (and not at risk or churned) → ``loyal``.
    lifecycle_loyal_orders: int = Field(default=4, ge=3)
    #: Churn risk: the purchase interval assumed for a customer with a single order.
    churn_default_interval_days: Decimal = Field(default=Decimal(90), gt=0)
    #: Churn risk reaches 1 when the time since the last order is this many intervals.
    churn_full_risk_ratio: Decimal = Field(default=Decimal(3), gt=1)
    #: Predictive CLV: how many years ahead the expected future purchases are counted.
    clv_horizon_years: Decimal = Field(default=Decimal(3), gt=0)

    @model_validator(mode="after")
    def _at_risk_before_churned(self) -> "Settings":
        if self.lifecycle_at_risk_days >= self.lifecycle_churned_days:
            raise ValueError(
                "SEGMENTATION_LIFECYCLE_AT_RISK_DAYS must be less than "
                "SEGMENTATION_LIFECYCLE_CHURNED_DAYS"
            )
        return self
