from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import Environment, RapportSettings

DEV_JWT_SECRET = "rapport-dev-jwt-secret-do-not-use-in-production"  # noqa: S105 - dev only


class Settings(RapportSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")
    service_name: ClassVar[str] = "gateway"

    port: int = 8000

    # --- upstreams (the route table maps paths to these names) ------------------------
    customer360_url: str = "http://127.0.0.1:8001"
    interactions_url: str = "http://127.0.0.1:8002"
    orders_url: str = "http://127.0.0.1:8003"
    segmentation_url: str = "http://127.0.0.1:8004"
    upstream_connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 30.0
    upstream_pool_size: int = 200

    # --- authentication ---------------------------------------------------------------
    #: OIDC issuer and audience every external JWT must carry.
    jwt_issuer: str = "rapport-dev"
    jwt_audience: str = "rapport-api"
    #: JWKS URL of the identity provider (RS256/ES256 keys). Empty: no external IdP.
    jwks_url: str = ""
    jwks_cache_s: int = 3600
    #: HS256 shared secret for locally minted tokens: development and test only.
    dev_jwt_secret: str = DEV_JWT_SECRET
    #: Claim holding the principal's roles.
    roles_claim: str = "roles"
    #: How long a verified API key is trusted without a database look-up; a revocation takes
    #: effect on other replicas within this bound.
    api_key_cache_s: float = 30.0

    # --- edges ------------------------------------------------------------------------
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])
    #: Requests per minute per principal, by role; the highest of a principal's roles wins.
    rate_limits: dict[str, int] = Field(
        default_factory=lambda: {
            "admin": 6000,
            "sales": 1200,
            "marketing": 1200,
            "support": 1200,
            "analyst": 600,
            "partner": 3000,
            "default": 600,
        }
    )
    rate_limit_enabled: bool = True
    webhook_tolerance_s: int = 300
    webhook_max_body_bytes: int = 1_048_576
    #: Serve ``POST /webhooks/{source}`` by a pure-ASGI handler (same answers, about half the
    #: CPU per webhook); ``false``: through the FastAPI route.
    webhook_fast_path: bool = True
    #: Most webhooks stored in one front-door transaction (group commit).
    webhook_batch_max: int = Field(default=500, ge=1, le=5_000)
    #: A batch not committed within this fails (503, the partner retries); also how long a
    #: shutdown waits for the queued webhooks to be written.
    webhook_write_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _no_shared_secret_jwt_in_production(self) -> "Settings":
        if self.environment == Environment.PRODUCTION and (
            self.dev_jwt_secret or not self.jwks_url
        ):
            raise ValueError(
                "production needs GATEWAY_JWKS_URL and GATEWAY_DEV_JWT_SECRET='' "
                "(HS256 shared-secret tokens are for development only)"
            )
        return self

    def upstream_url(self, name: str) -> str:
        url: str = getattr(self, f"{name}_url")
        return url.rstrip("/")
