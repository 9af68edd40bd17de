"""Apache Kafka (single-node KRaft) for the tests Tansu cannot serve.

Tansu (:mod:`shared.devstack.tansu`) is the everyday broker, but it keeps data only in
memory and has no idempotent producer. Tests of exactly-once/idempotent producers and of
"committed messages survive a broker restart" need the real broker. Apache Kafka is not on
PyPI, so it is assembled from Maven Central: ``deploy/kafka/pom.xml`` lists the broker
(``org.apache.kafka:kafka_2.13``) and a Log4j 2 backend, and ``mvn dependency:copy-dependencies``
copies the jars into a cache folder (nothing is committed, no tarball is downloaded). It
therefore needs ``java`` and ``mvn`` on PATH; :meth:`ApacheKafka.available` tells callers
(e.g. to skip ``@pytest.mark.kafka`` tests) whether it can run.

The broker is one JVM in combined mode (``process.roles=broker,controller``, static quorum of
itself), data under ``<work_dir>/data`` so :meth:`ApacheKafka.restart` keeps committed
messages, Log4j output at WARN in ``<work_dir>/logs/server.log`` and the JVM's own
stdout/stderr in ``<work_dir>/kafka.log``. A static ``controller.quorum.voters`` (rather
than the 4.x ``--standalone`` dynamic quorum) is used because the controller's endpoint is
then read from the config on every start instead of being frozen into the metadata log at
format time, so a later run on a different free port reuses the same data.

Startup measured on a 2-vCPU dev box: ~1.7-2.5 s warm with ``-XX:+UseSerialGC
-XX:TieredStopAtLevel=1`` (about 20% faster than the JVM defaults), plus ~1 s for storage
formatting on the first start and ~4 s for the first jar fetch; ~5.5 s after a kill().
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from shared.devstack.process import (
    ManagedProcess,
    ServiceStartError,
    free_port,
    probe_kafka_broker,
    run_child,
)

logger = logging.getLogger(__name__)

#: deploy/kafka in the repository (pom.xml and the Log4j 2 configuration).
DEPLOY_DIR: Path = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
POM_PATH: Path = DEPLOY_DIR / "pom.xml"
LOG4J_CONFIG_PATH: Path = DEPLOY_DIR / "log4j2.properties"

DEFAULT_VERSION = "4.1.1"

_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    # A small single-node broker starts measurably faster with the serial GC and C1 only.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("java") or "java"


def _new_cluster_id() -> str:
    """A random Kafka cluster id (url-safe base64 UUID, as ``kafka-storage random-uuid``)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # would look like a command-line flag
            return cid


class ApacheKafka(ManagedProcess):
    """A single-node Apache Kafka (KRaft) broker on ``127.0.0.1:<port>`` with on-disk data."""

    service_name: ClassVar[str] = "kafka"
    #: SIGTERM runs the JVM shutdown hook: a controlled shutdown that flushes the logs.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    death_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 30.0
    start_timeout: ClassVar[float] = 120.0

    #: The real broker implements InitProducerId: idempotent/transactional producers work.
    supports_idempotence: ClassVar[bool] = True

    #: Broker settings beyond listeners/quorum/paths (single node: replication factor 1).
    settings: ClassVar[Mapping[str, str]] = {
        "num.partitions": "6",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # 50 by default: creating them on the first consumer-group join costs seconds.
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        # After a crash (kill()) the restarted broker cannot re-register until the dead
        # incarnation's session expires (DUPLICATE_BROKER_REGISTRATION): 9 s by default,
        # which made start-after-kill take ~12 s. 4 s brings it to ~5.5 s while still
        # tolerating multi-second pauses on a loaded CI box.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
    }

    def __init__(
        self,
        work_dir: Path,
        port: int | None = None,
        version: str = DEFAULT_VERSION,
        *,
        controller_port: int | None = None,
        libs_dir: Path | None = None,
    ) -> None:
        super().__init__(work_dir, port)
        self._version = version
        self._controller_port = (
            controller_port if controller_port is not None else free_port(self.host)
        )
        self._libs_dir = (
            Path(libs_dir).resolve() if libs_dir is not None else self.work_dir / f"libs-{version}"
        )

    # -- public API ---------------------------------------------------------------------

    @staticmethod
    def available() -> bool:
        """True when ``java`` and ``mvn`` are on PATH (needed to fetch and run the broker)."""
        return shutil.which("java") is not None and shutil.which("mvn") is not None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def version(self) -> str:
        return self._version

    @property
    def controller_port(self) -> int:
        """Port of the KRaft controller listener (internal; kept across restarts)."""
        return self._controller_port

    @property
    def libs_dir(self) -> Path:
        """Folder holding the broker's jars (``<work_dir>/libs-<version>`` by default)."""
        return self._libs_dir

    @property
    def data_dir(self) -> Path:
        """Kafka's ``log.dirs`` (topic data and the KRaft metadata log)."""
        return self.work_dir / "data"

    @property
    def server_log_path(self) -> Path:
        """The broker's Log4j output (WARN and above)."""
        return self.work_dir / "logs" / "server.log"

    def ensure_jars(self) -> Path:
        """Fetch the broker jars with Maven unless already cached; return :attr:`libs_dir`."""
        libs = self._libs_dir
        marker = libs / ".complete"
        if marker.is_file():
            return libs
        if not POM_PATH.is_file():
            raise ServiceStartError(f"{POM_PATH} not found (run from a source checkout)")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceStartError("Apache Kafka needs Maven ('mvn' on PATH) to fetch its jars")
        if libs.exists():  # an interrupted earlier fetch
            shutil.rmtree(libs)
        libs.parent.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        logger.info("fetching Apache Kafka %s jars into %s", self._version, libs)
        run_child(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "dependency:copy-dependencies",
                "-f",
                str(POM_PATH),
                f"-DoutputDirectory={libs}",
                f"-Dkafka.version={self._version}",
            ],
            log_path=self.work_dir / "mvn.log",
            timeout=900,
            what="fetching the Apache Kafka jars with Maven",
        )
        if not (libs / f"kafka_2.13-{self._version}.jar").is_file():
            raise ServiceStartError(
                f"Maven finished but {libs} has no kafka_2.13-{self._version}.jar"
            )
        marker.write_text(self._version + "\n")
        return libs

    # -- ManagedProcess hooks -----------------------------------------------------------

    def _ports(self) -> list[int]:
        return [self.port, self._controller_port]

    def _properties_path(self) -> Path:
        return self.work_dir / "server.properties"

    def _write_properties(self) -> None:
        listener = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self._controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self._controller_port}",
            "listeners": f"{listener},{controller}",
            "advertised.listeners": listener,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **self.settings,
        }
        text = "# Generated by shared/devstack/kafka.py on every start; edits are lost.\n"
        text += "".join(f"{key}={value}\n" for key, value in props.items())
        self._properties_path().write_text(text)

    def _classpath(self) -> str:
        return f"{self._libs_dir}{os.sep}*"  # expanded by the JVM, not a shell

    def _prepare(self) -> None:
        self.ensure_jars()
        (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not (self.data_dir / "meta.properties").is_file():
            logger.info("formatting Kafka storage in %s", self.data_dir)
            run_child(
                [
                    _java(),
                    *_JVM_OPTIONS,
                    f"-Dlog4j2.configurationFile={LOG4J_CONFIG_PATH}",
                    f"-Dkafka.logs.dir={self.work_dir / 'logs'}",
                    "-cp",
                    self._classpath(),
                    "kafka.tools.StorageTool",
                    "format",
                    "--config",
                    str(self._properties_path()),
                    "--cluster-id",
                    _new_cluster_id(),
                ],
                log_path=self.log_path,
                timeout=120,
                what="formatting Kafka storage",
                cwd=self.work_dir,
            )

    def _command(self) -> list[str]:
        return [
            _java(),
            *_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG_PATH}",
            f"-Dkafka.logs.dir={self.work_dir / 'logs'}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self._properties_path()),
        ]

    def _probe(self) -> None:
        probe_kafka_broker(self.host, self.port)

    def _diagnostic_logs(self) -> list[Path]:
        return [self.log_path, self.server_log_path]


__all__ = ["DEFAULT_VERSION", "POM_PATH", "ApacheKafka"]
