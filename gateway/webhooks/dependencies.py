from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from gateway.models import WebhookReceipt, WebhookSource
from gateway.webhooks.repository import WebhookRepository
from gateway.webhooks.service import SourceCache
from shared.db import SessionDep
from shared.errors import NotFound, ServiceUnavailable


async def get_source_cache(request: Request) -> SourceCache:
    """The running gateway's one cache (the front door reads it, admin changes invalidate it)."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise ServiceUnavailable("the gateway is not running", headers={"Retry-After": "1"})
    cache: SourceCache = gateway.sources
    return cache


SourceCacheDep = Annotated[SourceCache, Depends(get_source_cache)]


async def get_source_or_404(name: str, session: SessionDep) -> WebhookSource:
    source = await WebhookRepository(session).source(name)
    if source is None:
        raise NotFound(f"webhook source {name!r} does not exist")
    return source


async def get_receipt_or_404(receipt_id: UUID, session: SessionDep) -> WebhookReceipt:
    receipt = await WebhookRepository(session).receipt(receipt_id)
    if receipt is None:
        raise NotFound(f"webhook receipt {receipt_id} does not exist")
    return receipt


SourceDep = Annotated[WebhookSource, Depends(get_source_or_404)]
ReceiptDep = Annotated[WebhookReceipt, Depends(get_receipt_or_404)]
