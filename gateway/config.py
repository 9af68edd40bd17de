import base64
import binascii
from typing import ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import Environment, RapportSettings, check_http_url

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
            # per client address, for the credential-less routes (campaign tracking links)
            "public": 600,
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

    # --- outbound webhooks ------------------------------------------------------------
    #: Fan Rapport events out to partner endpoints from this process (consumer + sender).
    outbound_enabled: bool = True
    #: Fernet key encrypting endpoint signing secrets at rest (``Fernet.generate_key()``).
    #: Empty: a key derived from ``dev_jwt_secret`` — development only.
    outbound_secret_key: str = ""
    #: Networks (CIDR) or host names endpoints may use although not public (SSRF allow-list).
    outbound_allowed: list[str] = Field(default_factory=list)
    #: Delay before each attempt, in seconds (default: Svix's schedule).
    outbound_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [0.0, 5, 300, 1800, 7200, 18000, 36000, 36000], min_length=1
    )
    outbound_timeout_s: float = Field(default=10.0, gt=0)
    #: An endpoint failing without a success for this long is disabled.
    outbound_disable_after_s: float = Field(default=5 * 86_400, gt=0)
    #: Requests in flight at once, over all endpoints, and per endpoint.
    outbound_concurrency: int = Field(default=64, ge=1)
    outbound_per_endpoint: int = Field(default=4, ge=1)
    #: How much of a response body the delivery log keeps (the rest is not read).
    outbound_excerpt_bytes: int = Field(default=1024, ge=0, le=65_536)
    #: How often the sender looks for due deliveries when nothing woke it.
    outbound_poll_s: float = Field(default=0.5, gt=0)

    _urls = field_validator(
        "customer360_url", "interactions_url", "orders_url", "segmentation_url"
    )(check_http_url)

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str) -> str:
        return check_http_url(value) if value else value

    @field_validator("outbound_secret_key")
    @classmethod
    def _fernet_key(cls, value: str) -> str:
        # Checked here, not at the first webhook subscription: Fernet wants 32 url-safe
        # base64-encoded bytes, as ``Fernet.generate_key()`` prints.
        if value:
            try:
                raw = base64.urlsafe_b64decode(value.encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("must be a Fernet key (32 url-safe base64-encoded bytes)")
        return value

    @model_validator(mode="after")
    def _no_shared_secret_jwt_in_production(self) -> "Settings":
        if self.environment == Environment.PRODUCTION and (
            self.dev_jwt_secret or not self.jwks_url
        ):
            raise ValueError(
                "production needs GATEWAY_JWKS_URL and GATEWAY_DEV_JWT_SECRET='' "
                "(HS256 shared-secret tokens are for development only)"
            )
        if self.environment == Environment.PRODUCTION and not self.outbound_secret_key:
            raise ValueError(
                "production needs GATEWAY_OUTBOUND_SECRET_KEY (a Fernet key) to encrypt "
                "outbound webhook secrets"
            )
        return self

    def upstream_url(self, name: str) -> str:
        url: str = getattr(self, f"{name}_url")
        return url.rstrip("/")
