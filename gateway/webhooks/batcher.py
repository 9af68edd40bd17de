"""Group commit for the webhook front door: many requests, one transaction, one WAL flush.

Storing a webhook durably costs little CPU but a commit (a WAL flush) and a few round trips;
one transaction per request caps the front door at well under 1,000 webhooks/s. So requests
do not write themselves. Each hands its receipt (with the outbox row that publishes it) to
the :class:`ReceiptBatcher` and awaits a future; one writer task takes everything queued (up
to ``max_batch`` items or ``max_batch_bytes`` of bodies), stores it with one set-based
statement — its own transaction, so it returns only once committed — and only then
resolves the futures. While a batch commits, the next one accumulates — there is no timer, so a lone webhook is written at once
and a busy front door writes bigger batches.

* **Only after commit.** A future is resolved after the transaction committed; a request
  answers ``202`` (or ``200`` duplicate) only then.
* **Duplicates.** A webhook-id stored before is answered as a duplicate with the stored
  receipt's id; two copies of one webhook-id in the same batch are written once, and the later
  copies are answered as duplicates of the first.
* **Failures.** If a batch fails, nothing of it is written (one transaction). When the
  database refused the data (not a lost connection or a timeout), each item is retried on its
  own, so one bad webhook cannot fail its neighbours; every waiter whose item could not be
  stored gets :class:`~shared.errors.ServiceUnavailable` (a ``503`` problem: the partner
  retries, and a retry of a webhook that did commit is answered as a duplicate).
* **Back-pressure.** When the queue holds ``max_queued`` webhooks (or ``max_queued_bytes``
  of bodies), the database is not keeping up: new webhooks get a ``503`` at once.
* **Shutdown.** :meth:`ReceiptBatcher.close` refuses new webhooks (``503``), writes what is
  queued, and fails whatever it cannot write before its deadline: a webhook is never
  acknowledged and then lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

import asyncpg
from prometheus_client import Histogram
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.webhooks.repository import NewReceipt, add_receipts, existing_receipt_ids
from shared.db import Database, driver_connection
from shared.errors import ServiceUnavailable

__all__ = ["Outcome", "ReceiptBatcher"]

logger = logging.getLogger(__name__)

#: (``accepted`` | ``duplicate``, the receipt's id)
Outcome = tuple[Literal["accepted", "duplicate"], UUID]

BATCH_SIZE = Histogram(
    "rapport_webhook_batch_size",
    "Webhooks stored per front-door transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)

#: Errors that say nothing about the batch's data — the database is unreachable, shutting
#: down, out of resources, or the write timed out: retrying item by item would not help.
#: (SQLAlchemy's errors come from checking out a connection; statements go to the driver.)
_NOT_THE_DATA = (
    OSError,
    TimeoutError,
    SQLAlchemyError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
)

#: Errors of a connection that is gone (not of the statement): worth one retry on a new one.
_CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    # e.g. "another operation is in progress": the server's goodbye (FATAL) was read while
    # the connection was idle, and the socket's end not yet.
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


@dataclass(slots=True)
class _Waiter:
    receipt: NewReceipt
    future: asyncio.Future[Outcome]
    #: Later copies of the same (source, webhook-id) within one batch.
    copies: list[asyncio.Future[Outcome]] = field(default_factory=list)


class ReceiptBatcher:
    """Stores webhook receipts by group commit; see the module's documentation."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 500,
        max_batch_bytes: int = 8 * 1024 * 1024,
        max_queued: int = 10_000,
        max_queued_bytes: int = 64 * 1024 * 1024,
        write_timeout_s: float = 10.0,
    ) -> None:
        self._database = database
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._max_queued = max_queued
        self._max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0
        self._write_timeout_s = write_timeout_s
        self._queue: deque[tuple[NewReceipt, asyncio.Future[Outcome]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._conn: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        #: Whether the current write runs on a connection kept from an earlier batch.
        self._reused = False

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-receipt-batcher")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new webhooks, write those queued, and stop; after ``timeout_s`` whatever is
        still unwritten is failed (``503``), never dropped silently."""
        self._closing = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(task)
            except TimeoutError:
                logger.warning("webhook batcher: queue not drained in %.1fs", timeout_s)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while self._queue:
            _, future = self._queue.popleft()
            _refuse(future, _SHUTTING_DOWN)
        self._queued_bytes = 0
        await self._release()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- the requests' side ---------------------------------------------------------------
    async def store(self, receipt: NewReceipt) -> Outcome:
        """Queue ``receipt`` and wait until it is committed (or known from before)."""
        if self._closing or self._task is None:
            raise _unavailable(_SHUTTING_DOWN)
        if len(self._queue) >= self._max_queued or (
            self._queue and self._queued_bytes + len(receipt.body) > self._max_queued_bytes
        ):
            # The database is not keeping up: say so at once rather than hold the request
            # (and its body) until the partner's own timeout.
            raise _unavailable(_OVERLOADED)
        self._queued_bytes += len(receipt.body)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((receipt, future))
        self._wakeup.set()
        return await future

    # --- the writer -----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take()
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                _fail(batch, _SHUTTING_DOWN)
                raise
            except Exception:  # a bug, not the database: answer, and keep the writer alive
                logger.exception("webhook batcher: unexpected error")
                _fail(batch, _NOT_STORED)

    def _take(self) -> list[_Waiter]:
        """Up to ``max_batch`` items (and about ``max_batch_bytes`` of bodies; always one),
        one writer per distinct (source, webhook-id)."""
        batch: dict[tuple[str, str], _Waiter] = {}
        size = 0
        taken = 0
        while self._queue and taken < self._max_batch:
            receipt, future = self._queue[0]
            if taken and size + len(receipt.body) > self._max_batch_bytes:
                break
            self._queue.popleft()
            self._queued_bytes -= len(receipt.body)
            taken += 1
            size += len(receipt.body)
            key = (receipt.source, receipt.webhook_id)
            first = batch.get(key)
            if first is None:
                batch[key] = _Waiter(receipt, future)
            else:
                first.copies.append(future)
        return list(batch.values())

    async def _write(self, batch: list[_Waiter]) -> None:
        try:
            outcomes = await self._store(batch)
        except _NOT_THE_DATA as exc:
            logger.warning("webhook batcher: %d webhooks not stored: %r", len(batch), exc)
            _fail(batch, _NOT_STORED)
            return
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                logger.warning("webhook batcher: webhook not stored: %r", exc)
                _fail(batch, _NOT_STORED)
                return
            # Which item did the database refuse? Store each on its own so the others pass.
            logger.warning(
                "webhook batcher: a batch of %d failed (%r); storing them one by one",
                len(batch),
                exc,
            )
            for position, waiter in enumerate(batch):
                try:
                    await self._write_one(waiter)
                except _NOT_THE_DATA:
                    _fail(batch[position:], _NOT_STORED)
                    return
            return
        for waiter, outcome in zip(batch, outcomes, strict=True):
            _resolve(waiter, outcome)

    async def _write_one(self, waiter: _Waiter) -> None:
        try:
            (outcome,) = await self._store([waiter])
        except asyncpg.PostgresError as exc:
            if isinstance(exc, _NOT_THE_DATA):
                raise
            receipt = waiter.receipt
            logger.warning("webhook %s/%s not stored: %r", receipt.source, receipt.webhook_id, exc)
            _fail([waiter], _NOT_STORED)
        else:
            _resolve(waiter, outcome)

    async def _store(self, batch: list[_Waiter]) -> list[Outcome | None]:
        """Write ``batch``: committed on return, or nothing of it on an error."""
        receipts = [w.receipt for w in batch]
        started = time.perf_counter()
        async with asyncio.timeout(self._write_timeout_s):
            try:
                inserted, existing = await self._insert(receipts)
            except _CONNECTION_LOST as exc:
                if not self._reused:
                    raise
                # The kept connection died while idle (e.g. the database restarted): once
                # more on a new one. Safe even if the lost attempt had committed: the
                # receipts' ids are ours, so a receipt found under its own id was stored
                # by us, and its outbox row only ever commits with it.
                logger.info("webhook batcher: connection lost (%r); reconnecting", exc)
                inserted, existing = await self._insert(receipts)
        BATCH_SIZE.observe(len(batch))
        elapsed_ms = (time.perf_counter() - started) * 1e3
        logger.debug("webhook batch of %d stored in %.1fms", len(batch), elapsed_ms)
        outcomes: list[Outcome | None] = []
        for r in receipts:
            stored = r.id if r.id in inserted else existing.get((r.source, r.webhook_id))
            if stored is None:  # the conflicting receipt was deleted since: let them retry
                outcomes.append(None)
            else:
                outcomes.append(("accepted" if stored == r.id else "duplicate", stored))
        return outcomes

    async def _insert(
        self, receipts: list[NewReceipt]
    ) -> tuple[set[UUID], dict[tuple[str, str], UUID]]:
        """One statement (its own transaction: a single statement needs no BEGIN/COMMIT, and
        returns only once committed), then, for webhooks known before, their receipts."""
        driver = await self._connection()
        try:
            inserted = await add_receipts(driver, receipts)
            if inserted:  # committed: the relay may send their events now
                self._database.outbox_committed()
            known = [(r.source, r.webhook_id) for r in receipts if r.id not in inserted]
            existing = await existing_receipt_ids(driver, known) if known else {}
        except asyncpg.PostgresError as exc:
            if isinstance(exc, _CONNECTION_LOST):
                await self._release(broken=True)
            raise  # the database refused the data: the connection is fine
        except BaseException:  # lost, timed out or cancelled mid-statement: state unknown
            await self._release(broken=True)
            raise
        return inserted, existing

    async def _connection(self) -> asyncpg.Connection:
        """The writer's own connection, kept between batches (checking one out of the pool
        per batch would add a pre-ping: three round trips, as many as the write itself)."""
        if self._conn is not None and self._driver is not None and not self._driver.is_closed():
            self._reused = True
            return self._driver
        await self._release(broken=True)
        self._reused = False
        self._conn = await self._database.engine.connect()
        self._driver = await driver_connection(self._conn, transactional=False)
        return self._driver

    async def _release(self, *, broken: bool = False) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                await conn.invalidate()
            await conn.close()


_SHUTTING_DOWN = "the gateway is shutting down; retry later"
_NOT_STORED = "the webhook could not be stored; retry later"
_OVERLOADED = "too many webhooks waiting to be stored; retry later"


def _unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, headers={"Retry-After": "1"})


def _refuse(future: asyncio.Future[Outcome], detail: str) -> None:
    if not future.done():  # a waiter whose request was cancelled is done already
        future.set_exception(_unavailable(detail))


def _resolve(waiter: _Waiter, outcome: Outcome | None) -> None:
    if outcome is None:
        _fail([waiter], _NOT_STORED)
        return
    if not waiter.future.done():
        waiter.future.set_result(outcome)
    for copy in waiter.copies:
        if not copy.done():
            copy.set_result(("duplicate", outcome[1]))


def _fail(batch: list[_Waiter], detail: str) -> None:
    for waiter in batch:
        for future in (waiter.future, *waiter.copies):
            _refuse(future, detail)
