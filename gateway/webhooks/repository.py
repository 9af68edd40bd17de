import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import Uuid, any_, bindparam, exists, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ErasedCustomer, WebhookReceipt, WebhookSecret, WebhookSource
from shared.events import Envelope
from shared.pagination import CursorParams, paginate


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- sources and secrets --------------------------------------------------------------
    async def source(self, name: str) -> WebhookSource | None:
        return (
            await self.session.scalars(select(WebhookSource).where(WebhookSource.name == name))
        ).one_or_none()

    async def add_source(self, source: WebhookSource) -> WebhookSource:
        self.session.add(source)
        await self.session.flush()
        await self.session.refresh(source)
        return source

    async def list_sources(self) -> list[WebhookSource]:
        return list(
            (await self.session.scalars(select(WebhookSource).order_by(WebhookSource.name))).all()
        )

    async def add_secret(self, secret: WebhookSecret) -> WebhookSecret:
        self.session.add(secret)
        await self.session.flush()
        await self.session.refresh(secret)
        return secret

    async def valid_secrets(self, source_id: UUID) -> list[str]:
        rows = await self.session.scalars(
            select(WebhookSecret.secret)
            .where(
                WebhookSecret.source_id == source_id,
                or_(
                    WebhookSecret.expires_at.is_(None),
                    WebhookSecret.expires_at > func.clock_timestamp(),
                ),
            )
            .order_by(WebhookSecret.created_at.desc())
        )
        return list(rows.all())

    async def expire_secrets(self, source_id: UUID, at: datetime) -> None:
        """Let the current secrets lapse at ``at`` (or earlier, if they already would)."""
        await self.session.execute(
            update(WebhookSecret)
            .where(
                WebhookSecret.source_id == source_id,
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > at),
            )
            .values(expires_at=at)
        )

    # --- receipts -------------------------------------------------------------------------
    async def receipt(self, receipt_id: UUID) -> WebhookReceipt | None:
        return await self.session.get(WebhookReceipt, receipt_id)

    async def list_receipts(
        self, params: CursorParams, *, source: str | None, status: str | None
    ) -> tuple[list[WebhookReceipt], str | None]:
        statement = select(WebhookReceipt)
        if source is not None:
            statement = statement.where(WebhookReceipt.source == source)
        if status is not None:
            statement = statement.where(WebhookReceipt.status == status)
        return await paginate(
            self.session,
            statement,
            keys=[WebhookReceipt.received_at, WebhookReceipt.id],
            key_of=lambda r: (r.received_at, r.id),
            params=params,
        )

    async def set_status(
        self,
        source: str,
        webhook_id: str,
        *,
        status: str,
        detail: str | None,
        processed_at: datetime,
        customer_ids: Sequence[UUID],
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "status_detail": detail,
            "processed_at": processed_at,
        }
        if customer_ids:
            values["customer_ids"] = text(
                "ARRAY(SELECT DISTINCT u FROM unnest(customer_ids || :ids) AS u)"
            ).bindparams(bindparam("ids", list(customer_ids), type_=ARRAY(Uuid)))
        await self.session.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.source == source, WebhookReceipt.webhook_id == webhook_id)
            .values(values)
        )

    async def erase_bodies(self, customer_ids: Sequence[UUID]) -> int:
        """Empty the body and headers of webhooks about any of ``customer_ids`` that was
        erased."""
        ids = list(customer_ids)
        result = await self.session.execute(
            update(WebhookReceipt)
            .where(
                WebhookReceipt.customer_ids.overlap(literal(ids, ARRAY(Uuid))),
                WebhookReceipt.body_erased_at.is_(None),
                exists().where(
                    ErasedCustomer.customer_id.in_(ids),
                    ErasedCustomer.customer_id == any_(WebhookReceipt.customer_ids),
                ),
            )
            .values(body=b"", headers={}, body_erased_at=func.now())
        )
        return int(getattr(result, "rowcount", 0))

    async def remember_erased(self, customer_id: UUID) -> None:
        await self.session.execute(
            pg_insert(ErasedCustomer).values(customer_id=customer_id).on_conflict_do_nothing()
        )


@dataclass(frozen=True, slots=True)
class NewReceipt:
    """One webhook to store, with the outbox row that publishes it."""

    id: UUID
    source: str
    webhook_id: str
    #: The kept request headers as JSON text.
    headers: str
    body: bytes
    content_type: str
    envelope: Envelope


#: Receipts and their outbox rows in one statement: the ``events`` CTE inserts an outbox row
#: only for the receipts the ``stored`` CTE really inserted (a known webhook-id inserts
#: nothing), so a batch is atomic with its events and needs a single round trip.
#:
#: No advisory lock per key, unlike :func:`shared.messaging.write_envelopes`: those locks make
#: the outbox ``id`` order of one key equal its commit order under concurrent writers. The key
#: of a received webhook is ``webhook_key(source, webhook_id)``, and the unique index on
#: (source, webhook_id) already admits one writer of that key at a time — a concurrent insert
#: of the same webhook waits on the index and then does nothing; a replay (the only other
#: writer of the key, and it does take the lock) needs the committed receipt, so it draws its
#: id after this row's. Leaving the locks out also keeps a 500-row batch from holding 500
#: entries of the shared lock table.
_ADD_RECEIPTS = """
WITH batch AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[],
        $7::uuid[], $8::text[], $9::text[], $10::text[], $11::bytea[]
    ) AS b(id, source, webhook_id, headers, body, content_type,
           event_id, topic, key, event_headers, payload)
), stored AS (
    INSERT INTO gateway.webhook_receipt
        (id, source, webhook_id, headers, body, content_type, status, replays, received_at)
    SELECT id, source, webhook_id, headers::jsonb, body, content_type, 'published', 0, now()
    FROM batch
    ON CONFLICT (source, webhook_id) DO NOTHING
    RETURNING id
), events AS (
    INSERT INTO gateway.outbox (event_id, topic, key, headers, payload)
    SELECT b.event_id, b.topic, b.key, b.event_headers::jsonb, b.payload
    FROM batch AS b JOIN stored USING (id)
)
SELECT id FROM stored
"""


async def add_receipts(driver: asyncpg.Connection, receipts: Sequence[NewReceipt]) -> set[UUID]:
    """Store receipts with their outbox rows, in the caller's transaction; returns the ids of
    those inserted (the others' (source, webhook-id) was stored before).

    The front door's hot path (≥ 2,000/s): one prepared statement for a whole batch. The
    (source, webhook-id) pairs must be distinct within ``receipts``.
    """
    rows = await driver.fetch(
        _ADD_RECEIPTS,
        [r.id for r in receipts],
        [r.source for r in receipts],
        [r.webhook_id for r in receipts],
        [r.headers for r in receipts],
        [r.body for r in receipts],
        [r.content_type for r in receipts],
        [r.envelope.id for r in receipts],
        [r.envelope.topic for r in receipts],
        [r.envelope.subject for r in receipts],
        [json.dumps(r.envelope.header_pairs()) for r in receipts],
        [r.envelope.data for r in receipts],
    )
    return {row[0] for row in rows}


async def existing_receipt_ids(
    driver: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], UUID]:
    """The receipts of webhooks already stored, by (source, webhook-id): the duplicate case
    of :func:`add_receipts`."""
    rows = await driver.fetch(
        "SELECT r.source, r.webhook_id, r.id FROM gateway.webhook_receipt AS r "
        "JOIN unnest($1::text[], $2::text[]) AS k(source, webhook_id) "
        "USING (source, webhook_id)",
        [source for source, _ in keys],
        [webhook_id for _, webhook_id in keys],
    )
    return {(row[0], row[1]): row[2] for row in rows}
