"""Configuration: the README documents every setting with its real default, and a part
refuses an invalid configuration, or production with development secrets, by naming the
environment variables to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import Settings as GatewaySettings
from services.customer360.config import Settings as Customer360Settings
from services.orders.config import Settings as OrdersSettings
from services.segmentation.config import Settings as SegmentationSettings
from shared.parts import PARTS, load
from shared.settings import ConfigurationError, RapportSettings, load_settings
from tests.deploy.config_table import expected_rows, readme_rows

ROOT = Path(__file__).resolve().parents[2]
FERNET_KEY = "gsdV5Wx3bjS1iiRvSUi7n_4pgJeMbNPTYvRVbUXXvyg="


def table_problems(documented: dict[str, tuple[str, str]]) -> list[str]:
    expected = {row.variable: row.default for row in expected_rows()}
    problems = [f"missing: {v}" for v in sorted(set(expected) - set(documented))]
    problems += [f"not a setting: {v}" for v in sorted(set(documented) - set(expected))]
    problems += [
        f"default of {v}: README {documented[v][0]!r}, code {d!r}"
        for v, d in expected.items()
        if v in documented and documented[v][0] != d
    ]
    problems += [
        f"no meaning: {v}" for v, (_, meaning) in documented.items() if not meaning.strip()
    ]
    return problems


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    assert table_problems(readme_rows()) == []


def test_the_table_check_notices_missing_and_wrong_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = readme_rows()
    del documented["RAPPORT_OUTBOX_BATCH_SIZE"]
    documented["GATEWAY_UPSTREAM_TIMEOUT_S"] = ("60", "changed")
    documented["RAPPORT_GONE"] = ("1", "removed long ago")
    assert table_problems(documented) == [
        "missing: RAPPORT_OUTBOX_BATCH_SIZE",
        "not a setting: RAPPORT_GONE",
        "default of GATEWAY_UPSTREAM_TIMEOUT_S: README '60', code '30.0'",
    ]

    class Extended(OrdersSettings):
        #: A setting someone adds without documenting it.
        brand_new_setting: int = 7

    monkeypatch.setattr(
        "tests.deploy.config_table.load",
        lambda path: Extended if path == "services.orders.config:Settings" else load(path),
    )
    assert table_problems(readme_rows()) == ["missing: ORDERS_BRAND_NEW_SETTING"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    prefixes = ("RAPPORT_", "DATABASE_URL", "KAFKA_", *(p.env_prefix for p in PARTS))
    for variable in list(os.environ):
        if variable.startswith(prefixes):
            monkeypatch.delenv(variable)
    return monkeypatch


@pytest.mark.parametrize(
    ("cls", "env", "names", "says"),
    [
        (OrdersSettings, {"ORDERS_PORT": "70000"}, "ORDERS_PORT / RAPPORT_PORT", "1 to 65535"),
        (OrdersSettings, {"RAPPORT_PORT": "eighty"}, "ORDERS_PORT", "valid integer"),
        (OrdersSettings, {"RAPPORT_LOG_LEVEL": "LOUD"}, "RAPPORT_LOG_LEVEL", "DEBUG"),
        (
            OrdersSettings,
            {"DATABASE_URL": "postgres://u@db/rapport"},
            "ORDERS_DATABASE_URL / RAPPORT_DATABASE_URL / DATABASE_URL",
            "postgresql+asyncpg://",
        ),
        (
            OrdersSettings,
            {"KAFKA_BOOTSTRAP_SERVERS": "kafka"},
            "KAFKA_BOOTSTRAP_SERVERS",
            "host:port",
        ),
        (
            OrdersSettings,
            {"ORDERS_CUSTOMER360_URL": "customer360:8000"},
            "ORDERS_CUSTOMER360_URL",
            "http",
        ),
        (
            OrdersSettings,
            {"RAPPORT_OUTBOX_BATCH_SIZE": "0"},
            "RAPPORT_OUTBOX_BATCH_SIZE",
            "greater",
        ),
        (OrdersSettings, {"RAPPORT_ENVIRONMENT": "staging"}, "RAPPORT_ENVIRONMENT", "production"),
        (
            GatewaySettings,
            {"GATEWAY_OUTBOUND_SECRET_KEY": "not-a-key"},
            "GATEWAY_OUTBOUND_SECRET_KEY",
            "Fernet",
        ),
        (GatewaySettings, {"GATEWAY_ORDERS_URL": "ftp://orders"}, "GATEWAY_ORDERS_URL", "http"),
        (
            Customer360Settings,
            {"CUSTOMER360_INTERACTIONS_URL": "http://"},
            "CUSTOMER360_INTERACTIONS_URL",
            "with a host",
        ),
        (
            SegmentationSettings,
            {"SEGMENTATION_LIFECYCLE_AT_RISK_DAYS": "400"},
            "SEGMENTATION_LIFECYCLE_AT_RISK_DAYS",
            "less than",
        ),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(
    clean_env: pytest.MonkeyPatch,
    cls: type[RapportSettings],
    env: dict[str, str],
    names: str,
    says: str,
) -> None:
    for variable, value in env.items():
        clean_env.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(cls)
    message = str(refused.value)
    assert message.startswith(f"invalid configuration of {cls.service_name}:")
    assert names in message
    assert says in message


def test_defaults_and_a_sound_environment_load(clean_env: pytest.MonkeyPatch) -> None:
    for p in PARTS:
        settings = load_settings(load(p.settings))
        assert settings.port == p.port
        assert settings.log_level == "INFO"
    clean_env.setenv("RAPPORT_LOG_LEVEL", "debug")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    clean_env.setenv("GATEWAY_OUTBOUND_SECRET_KEY", FERNET_KEY)
    settings = load_settings(GatewaySettings)
    assert settings.log_level == "DEBUG"
    assert settings.outbound_secret_key == FERNET_KEY


def production(env: pytest.MonkeyPatch, **variables: str) -> None:
    env.setenv("RAPPORT_ENVIRONMENT", "production")
    for variable, value in variables.items():
        env.setenv(variable, value)


def test_production_refuses_the_development_internal_secret(
    clean_env: pytest.MonkeyPatch,
) -> None:
    production(clean_env)
    for p in PARTS:
        with pytest.raises(ConfigurationError, match="RAPPORT_INTERNAL_TOKEN_SECRET must be set"):
            load_settings(load(p.settings))


def test_production_refuses_development_tokens_and_keys_at_the_gateway(
    clean_env: pytest.MonkeyPatch,
) -> None:
    production(clean_env, RAPPORT_INTERNAL_TOKEN_SECRET="s" * 40)
    assert load_settings(OrdersSettings).environment == "production"
    with pytest.raises(ConfigurationError, match="GATEWAY_JWKS_URL and GATEWAY_DEV_JWT_SECRET"):
        load_settings(GatewaySettings)
    clean_env.setenv("GATEWAY_JWKS_URL", "https://idp.example.com/jwks.json")
    with pytest.raises(ConfigurationError, match="GATEWAY_DEV_JWT_SECRET=''"):
        load_settings(GatewaySettings)  # the development HS256 secret is still set
    clean_env.setenv("GATEWAY_DEV_JWT_SECRET", "")
    with pytest.raises(ConfigurationError, match="GATEWAY_OUTBOUND_SECRET_KEY"):
        load_settings(GatewaySettings)
    clean_env.setenv("GATEWAY_OUTBOUND_SECRET_KEY", FERNET_KEY)
    settings = load_settings(GatewaySettings)
    assert (settings.jwks_url, settings.dev_jwt_secret) == ("https://idp.example.com/jwks.json", "")
