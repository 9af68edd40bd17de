"""deploy/entrypoint.py, the image's command, run as the container runs it (a process) but
without a container: serving a part against the test PostgreSQL and broker, migrating an
empty database, refusing a bad configuration."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from shared.devstack import free_port
from shared.migrate import alembic_config
from shared.parts import PARTS
from tests.conftest import Infra

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.py"


def entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rapport_entrypoint", ENTRYPOINT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_environ(**extra: str) -> dict[str, str]:
    prefixes = ("RAPPORT_", "DATABASE_URL", "KAFKA_", *(p.env_prefix for p in PARTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | extra


def run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args],
        env=env,
        cwd="/",  # the code is found through the installed package, not the working directory
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_serve_builds_the_uvicorn_command_of_the_part(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in clean_environ().keys() ^ os.environ.keys():
        monkeypatch.delenv(variable)
    monkeypatch.setenv("RAPPORT_HOST", "0.0.0.0")
    monkeypatch.setenv("RAPPORT_PORT", "8000")
    monkeypatch.setenv("ORDERS_PORT", "9003")
    command = entrypoint().serve_command("orders")
    assert command[1:5] == ["-m", "shared.cli", "serve", "orders"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "9003"  # the part's own variable wins
    assert entrypoint().serve_command("segmentation")[command.index("--port") + 1] == "8000"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (
            ["serve", "orders"],
            {"ORDERS_PORT": "0"},
            "ORDERS_PORT / RAPPORT_PORT: must be a TCP port",
        ),
        (["serve", "billing"], {}, "unknown part 'billing'"),
        (
            ["serve", "gateway"],
            {"RAPPORT_ENVIRONMENT": "production"},
            "RAPPORT_INTERNAL_TOKEN_SECRET must be set",
        ),
        (["migrate", "orders"], {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
    ],
)
def test_a_bad_configuration_stops_with_a_message_not_a_traceback(
    args: list[str], env: dict[str, str], says: str
) -> None:
    result = run(*args, env=clean_environ(**env), timeout=60)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_other_commands_go_to_the_rapport_cli() -> None:
    result = run("asyncapi", env=clean_environ(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"asyncapi": "3.' in result.stdout
    assert run("healthcheck", env=clean_environ(RAPPORT_PORT=str(free_port()))).returncode == 1


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return int(response.status)
    except OSError:
        return 0


def test_serve_runs_a_part_that_becomes_ready_and_stops_on_sigterm(infra: Infra) -> None:
    port = free_port()
    env = clean_environ(
        RAPPORT_ENVIRONMENT="test",
        RAPPORT_HOST="127.0.0.1",
        RAPPORT_PORT=str(port),
        DATABASE_URL=infra.database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
        RAPPORT_KAFKA_IDEMPOTENT_PRODUCER=str(infra.supports_idempotence).lower(),
        RAPPORT_KAFKA_CREATE_TOPICS="false",
        RAPPORT_CONSUMERS_ENABLED="false",
        SEGMENTATION_ANALYTICS_SCHEDULER_ENABLED="false",
    )
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "serve", "segmentation"],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _get(port, "/ready") != 200:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.2)
        health = run("healthcheck", env=clean_environ(RAPPORT_PORT=str(port)))
        assert health.returncode == 0
        # exec: the process we started *is* `rapport serve` (PID 1 in a container gets the
        # SIGTERM), and after an orderly shutdown it exits 0.
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "Application shutdown complete" in output
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_migrate_brings_an_empty_database_to_every_parts_head(infra: Infra) -> None:
    name = f"rapport_migrate_{uuid.uuid4().hex[:8]}"
    url = infra.create_database(name)
    try:
        result = run("migrate", env=clean_environ(DATABASE_URL=url), timeout=240)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"rapport: {p.name} migrated" for p in PARTS]

        async def versions() -> dict[str, list[str]]:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return {
                    p.name: [
                        row["version_num"]
                        for row in await conn.fetch(
                            f'SELECT version_num FROM "{p.name}".alembic_version'
                        )
                    ]
                    for p in PARTS
                }
            finally:
                await conn.close()

        heads = {
            p.name: list(ScriptDirectory.from_config(alembic_config(p.name)).get_heads())
            for p in PARTS
        }
        assert asyncio.run(versions()) == heads
    finally:
        infra.drop_database(name)
