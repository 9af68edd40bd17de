"""deploy/compose.yaml, checked without a Docker engine: the Compose specification's JSON
schema (as check-jsonschema ships it), then the stack's promises."""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared.parts import PARTS, load
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
NAMES = [p.name for p in PARTS]
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    loaded: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR:-default}`` with the given environment."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    return value


def validate(document: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    validate(compose, schema)
    validate(interpolate(compose, {}), schema)


def test_the_schema_check_can_fail(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["depends_on"]["orders"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema)
    broken = copy.deepcopy(compose)
    broken["services"]["orders"]["helthcheck"] = {"test": ["CMD", "true"]}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema)


def test_services_and_images_are_pinned(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "kafka", "migrate", *NAMES}
    assert re.fullmatch(r"postgres:\d+\.\d+(-\w+)?", services["postgres"]["image"])
    # The official Apache Kafka image, the version the tests run against (deploy/kafka/pom.xml).
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([\d.]+)</kafka.version>", pom)
    assert version is not None
    assert services["kafka"]["image"] == f"apache/kafka:{version.group(1)}"
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "ZOOKEEPER" not in json.dumps(kafka_env).upper()


def test_only_the_gateway_is_published(compose: dict[str, Any]) -> None:
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"gateway"}
    assert interpolate(compose, {})["services"]["gateway"]["ports"] == ["8000:8000"]


def test_start_order_uses_health_and_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("postgres", "kafka", *NAMES):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in NAMES:
        service = services[name]
        assert service["command"] == ["serve", name]
        assert service["healthcheck"]["test"][-1] == "healthcheck"
        conditions = {dep: c["condition"] for dep, c in service["depends_on"].items()}
        assert conditions["migrate"] == "service_completed_successfully"
        assert conditions["kafka"] == "service_healthy"
        assert conditions["postgres"] == "service_healthy"
    gateway = {dep: c["condition"] for dep, c in services["gateway"]["depends_on"].items()}
    assert all(gateway[name] == "service_healthy" for name in NAMES if name != "gateway")


def test_every_part_gets_a_configuration_it_accepts(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment compose gives each part loads, points at the compose hosts, and wires
    each service URL to the service of that name."""
    services = interpolate(compose, {})["services"]
    for variable in list(os.environ):
        if variable.startswith(("RAPPORT_", "DATABASE_URL", "KAFKA_")) or any(
            variable.startswith(p.env_prefix) for p in PARTS
        ):
            monkeypatch.delenv(variable)
    for p in PARTS:
        with monkeypatch.context() as mp:
            for variable, value in services[p.name]["environment"].items():
                mp.setenv(variable, str(value))
            settings = load_settings(load(p.settings))
        assert settings.database_url.endswith("@postgres:5432/rapport")
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        wired = {
            field.removesuffix("_url"): value
            for field, value in settings.model_dump().items()
            if field.removesuffix("_url") in NAMES
        }
        assert wired == {target: f"http://{target}:8000" for target in wired}, p.name
        expected = {"gateway": 4, "customer360": 3, "interactions": 2, "orders": 1}
        assert len(wired) == expected.get(p.name, 0), p.name
