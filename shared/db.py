"""Database access: one engine per part, sessions with a single commit point.

* :func:`schema_metadata` gives each part its own ``MetaData`` bound to its own PostgreSQL
  schema, with one constraint naming convention.
* :class:`Database` is built in the app's lifespan (never at import time). Its
  :meth:`Database.session` context manager is *the* commit point: it commits when the block
  succeeds and rolls back when it raises; services and repositories only ``flush()``.
* The request dependency :data:`SessionDep` uses FastAPI's ``scope="function"`` so the commit
  happens before the response is sent: a commit that fails becomes an error response, not a
  ``201`` for data that was never stored.
* After a commit that wrote outbox rows, the registered ``on_commit`` callbacks run (the
  outbox relay's wake-up), so events leave within milliseconds without a NOTIFY per write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import sqlalchemy.exc
from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "NAMING_CONVENTION",
    "UNAVAILABLE_ERRORS",
    "Database",
    "SessionDep",
    "database_unavailable",
    "driver_connection",
    "event_source",
    "get_session",
    "lost_a_race",
    "mark_outbox_written",
    "schema_metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Errors of a database that cannot answer now (unreachable, shutting down, starting up, out
#: of connections) rather than of the statement: waiting helps; blaming the input would not.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    # e.g. "another operation is in progress": the server's goodbye was read while idle
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: "the database system is starting up"
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot answer now (see :data:`UNAVAILABLE_ERRORS`),
    looking through SQLAlchemy's wrappers to the driver's error."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UNAVAILABLE_ERRORS):
            return True
        wrapped = seen.orig if isinstance(seen, sqlalchemy.exc.DBAPIError) else None
        seen = wrapped if isinstance(wrapped, BaseException) else seen.__cause__
    return False


#: A deadlock (40P01) or a serialization failure (40001): PostgreSQL aborted the
#: transaction only because a concurrent one raced it. Running it again succeeds.
_RACES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def lost_a_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a transaction aborted by a concurrent one (retry it as it is)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _RACES) or getattr(seen, "sqlstate", None) in {"40P01", "40001"}:
            return True
        wrapped = seen.orig if isinstance(seen, sqlalchemy.exc.DBAPIError) else None
        seen = wrapped if isinstance(wrapped, BaseException) else seen.__cause__
    return False


_OUTBOX_WRITTEN = "rapport.outbox_written"
_EVENT_SOURCE = "rapport.event_source"


def schema_metadata(schema: str) -> MetaData:
    """The ``MetaData`` of one part: every table in ``schema``, one naming convention.

    Each part declares ``class Base(DeclarativeBase): metadata = schema_metadata("orders")``.
    """
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def event_source(session: AsyncSession) -> tuple[str, str]:
    """``(CloudEvents source, schema)`` of the part this session belongs to."""
    try:
        source, schema = session.info[_EVENT_SOURCE]
    except KeyError:
        raise RuntimeError("this session does not belong to a part's Database") from None
    return str(source), str(schema)


async def driver_connection(
    conn: AsyncConnection | AsyncSession, *, transactional: bool = True
) -> asyncpg.Connection:
    """The asyncpg connection under ``conn``, for hot paths where SQLAlchemy's per-statement
    overhead matters (COPY, executemany, the outbox).

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, with its first statement; a statement
    sent straight to the driver before that would run in autocommit and survive a rollback.
    With ``transactional`` (the default) the adapter's transaction is begun first, so the
    driver's statements join the session's unit of work. ``transactional=False`` is for
    connections used outside any unit of work (the relay's).
    """
    if isinstance(conn, AsyncSession):
        conn = await conn.connection()
    raw = await conn.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    if transactional and adapter._transaction is None and adapter.isolation_level != "autocommit":
        await adapter._start_transaction()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


def mark_outbox_written(session: AsyncSession) -> None:
    """Remember that this session's transaction wrote events (see :meth:`Database.session`)."""
    session.info[_OUTBOX_WRITTEN] = True


class Database:
    """The engine and session factory of one part."""

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        pool_size: int = 10,
        max_overflow: int = 10,
        echo: bool = False,
        application_name: str = "rapport",
    ) -> None:
        self.schema = schema
        self.event_source = f"/rapport/{application_name}"
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            echo=echo,
            connect_args={"server_settings": {"application_name": application_name}},
        )
        self._sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._on_commit: list[Callable[[], None]] = []
        self._bound: AsyncConnection | None = None

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every commit that wrote outbox rows."""
        self._on_commit.append(callback)

    def bind(self, connection: AsyncConnection | None) -> None:
        """Tests: run every session inside ``connection``'s transaction (savepoints)."""
        self._bound = connection

    def _new_session(self) -> AsyncSession:
        if self._bound is not None:
            session = AsyncSession(
                bind=self._bound,
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
        else:
            session = self._sessionmaker()
        session.info[_EVENT_SOURCE] = (self.event_source, self.schema)
        return session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back (dropping queued events) on error."""
        session = self._new_session()
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            wrote_events = session.info.pop(_OUTBOX_WRITTEN, False)
            await session.close()
        if wrote_events:
            self.outbox_committed()

    def outbox_committed(self) -> None:
        """Tell the outbox relay that a committed transaction wrote events."""
        for callback in self._on_commit:
            callback()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.session() as session:
        yield session


#: The request's session; committed when the endpoint returns, before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
