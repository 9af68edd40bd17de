"""``Idempotency-Key`` for creating requests: a retried POST returns the first answer.

Each part that accepts the header adds the ``idempotency_key`` table to its metadata
(:func:`idempotency_table`). A create then runs::

    claim = await claim_key(session, table, principal.subject, key, fingerprint)
    if (replayed := claim.replayed()) is not None:
        return replayed                # the stored status and body, nothing written
    ... do the work in the same session ...
    await claim.complete(status_code, body)

The key row is inserted in the caller's transaction, before the work: a concurrent request
with the same key waits on that row and, once the first commits, sees its stored answer; if
the first fails, its row vanishes with its work and the retry runs normally. The same key
with a different request body is refused with 422, as Stripe and the IETF draft do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import UnprocessableEntity

__all__ = ["IdempotencyKeyHeader", "KeyClaim", "claim_key", "fingerprint", "idempotency_table"]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string (a UUID is best). A retry with the same key and body "
        "returns the first answer instead of creating again; keys are kept for 24 hours.",
    ),
]


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_key",
        metadata,
        Column("principal", String(200), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("operation", String(100), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer),
        Column("response", JSONB),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def fingerprint(payload: Any) -> str:
    """A stable hash of a request's meaning (its parsed body), not of its bytes."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str, separators=(",", ":")).encode()
    ).hexdigest()


@dataclass
class KeyClaim:
    session: AsyncSession | None
    table: Table | None
    principal: str
    key: str | None
    #: The stored ``(status_code, body)`` when this is a retry of a finished request.
    replay: tuple[int, Any] | None = None

    def replayed(self, *, etag: bool = False) -> JSONResponse | None:
        """The stored answer of a retried request, marked ``Idempotent-Replayed: true`` (with
        the ``ETag`` of its stored ``version`` when ``etag``); ``None`` for a first request."""
        if self.replay is None:
            return None
        status_code, stored = self.replay
        headers = {"Idempotent-Replayed": "true"}
        if etag:
            headers["ETag"] = f'"{stored["version"]}"'
        return JSONResponse(stored, status_code=status_code, headers=headers)

    async def complete(self, status_code: int, response: Any) -> None:
        """Store the answer with the key (in the caller's transaction)."""
        if self.key is None or self.session is None or self.table is None:
            return
        t = self.table
        await self.session.execute(
            update(t)
            .where(and_(t.c.principal == self.principal, t.c.key == self.key))
            .values(status_code=status_code, response=response)
        )


async def claim_key(
    session: AsyncSession,
    table: Table,
    principal: str,
    key: str | None,
    *,
    operation: str,
    payload: Any,
) -> KeyClaim:
    """Reserve ``key`` for this request, or find the answer of the request that used it."""
    if key is None:
        return KeyClaim(None, None, principal, None)
    digest = fingerprint(payload)
    inserted = await session.execute(
        insert(table)
        .values(principal=principal, key=key, operation=operation, fingerprint=digest)
        .on_conflict_do_nothing()
        .returning(table.c.key)
    )
    if inserted.first() is not None:
        return KeyClaim(session, table, principal, key)
    row = (
        await session.execute(
            select(
                table.c.operation, table.c.fingerprint, table.c.status_code, table.c.response
            ).where(table.c.principal == principal, table.c.key == key)
        )
    ).one()
    if row.operation != operation or row.fingerprint != digest:
        raise UnprocessableEntity(
            "this Idempotency-Key was already used with a different request",
            errors=[{"pointer": "/headers/idempotency-key", "detail": "reused"}],
        )
    return KeyClaim(None, None, principal, key, replay=(row.status_code, row.response))
