import json
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import WebhookReceipt, WebhookSecret, WebhookSource
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
    ) -> None:
        await self.session.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.source == source, WebhookReceipt.webhook_id == webhook_id)
            .values(status=status, status_detail=detail, processed_at=processed_at)
        )


async def add_receipt(
    driver: asyncpg.Connection,
    *,
    source: str,
    webhook_id: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
) -> UUID | None:
    """Store a receipt; ``None`` when this (source, webhook-id) was stored before.

    The front door's hot path (≥ 2,000/s): one prepared statement on the driver, in the
    caller's transaction.
    """
    receipt_id: UUID | None = await driver.fetchval(
        "INSERT INTO gateway.webhook_receipt "
        "(id, source, webhook_id, headers, body, content_type, status, replays, received_at) "
        "VALUES ($1, $2, $3, $4::jsonb, $5, $6, 'published', 0, now()) "
        "ON CONFLICT (source, webhook_id) DO NOTHING RETURNING id",
        uuid4(),
        source,
        webhook_id,
        json.dumps(headers),
        body,
        content_type,
    )
    return receipt_id


async def existing_receipt_id(driver: asyncpg.Connection, source: str, webhook_id: str) -> UUID:
    """The receipt of a webhook already stored (the duplicate case of :func:`add_receipt`)."""
    receipt_id: UUID = await driver.fetchval(
        "SELECT id FROM gateway.webhook_receipt WHERE source = $1 AND webhook_id = $2",
        source,
        webhook_id,
    )
    return receipt_id
