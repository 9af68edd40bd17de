"""Creating Kafka clients from settings, and the topic bootstrap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.settings import RapportSettings

__all__ = ["Producer", "ensure_topics"]

logger = logging.getLogger(__name__)


class Producer:
    """The part's one Kafka producer, started on first use rather than at app start-up.

    A part whose broker is down still starts (and answers ``/ready`` with 503); its events
    wait in the outbox. A failed start is retried with a fresh client, since an
    ``AIOKafkaProducer`` cannot be started again after a failed ``start()``.

    Tuning: acks from all in-sync replicas; no linger (latency first — batches still form
    while a request is in flight); idempotence where the broker supports it.
    """

    def __init__(self, settings: RapportSettings, *, client_id: str | None = None) -> None:
        self._settings = settings
        self._client_id = client_id or settings.service_name
        self._lock = asyncio.Lock()
        self._client: AIOKafkaProducer | None = None
        self._started = False

    def _new_client(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=s.kafka_idempotent_producer,
            linger_ms=0,
            max_batch_size=256 * 1024,
            request_timeout_ms=15_000,
            retry_backoff_ms=200,
        )

    @property
    def client(self) -> AIOKafkaProducer:
        if self._client is None or not self._started:
            raise RuntimeError("producer not started; await ensure_started() first")
        return self._client

    async def ensure_started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._client is not None and self._started:
                return self._client
            client = self._new_client()
            try:
                await client.start()
            except BaseException:
                await client.stop()
                raise
            self._client, self._started = client, True
            return client

    async def reachable(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                client = await self.ensure_started()
                return bool(await client.client.fetch_all_metadata())
        except (TimeoutError, KafkaError, OSError):
            return False

    async def stop(self) -> None:
        async with self._lock:
            if self._client is not None:
                await self._client.stop()
            self._client, self._started = None, False

    def _holds(self, client: AIOKafkaProducer) -> bool:
        return self._client is client

    async def replace(self, failed: AIOKafkaProducer, reason: BaseException) -> None:
        """Drop ``failed`` after a send through it failed; the next :meth:`ensure_started`
        makes a new client (with a new producer id).

        An idempotent aiokafka producer does not recover by itself from some broker answers:
        after a broker crash it may get ``OutOfOrderSequenceNumber`` or
        ``UnknownProducerId``, which fail the batch but leave the client's sequence numbers
        where they were, so every later batch fails the same way; and a sender task that
        died leaves a client that fails (or never completes) every send. Keeping such a
        client stalls the outbox for good (aio-libs/aiokafka#1017). A new client costs one
        reconnect, and its at-least-once resend is what consumers dedupe anyway.
        """
        async with self._lock:
            if not self._holds(failed):
                return  # already replaced by a concurrent caller
            self._client, self._started = None, False
        logger.warning("kafka producer %s replaced after: %r", self._client_id, reason)
        # Fail what the old client still holds (its owner resends it), so that stop() does
        # not wait for batches that can never be delivered. aiokafka has no public call for
        # this; fail_all is what the client itself does when its sender dies (0.14.0).
        failed._message_accumulator.fail_all(KafkaError(f"producer replaced: {reason!r}"))
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await failed.stop()


async def ensure_topics(
    settings: RapportSettings, topics: Iterable[str], *, replication_factor: int | None = None
) -> list[str]:
    """Create ``topics`` if missing (idempotent) with ``kafka_topic_partitions`` partitions
    and ``kafka_topic_replication_factor`` replicas; returns the topics created. Existing
    topics are left as they are. Real deployments may pre-create them
    (``rapport kafka topics ensure``)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return []
        replicas = replication_factor or settings.kafka_topic_replication_factor
        new = [NewTopic(t, settings.kafka_topic_partitions, replicas) for t in missing]
        with contextlib.suppress(TopicAlreadyExistsError):  # another part was quicker
            await admin.create_topics(new)
        logger.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()
