from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status

from gateway.auth.dependencies import require_gateway_scopes
from gateway.models import WebhookReceipt, WebhookSecret, WebhookSource
from gateway.webhooks import service
from gateway.webhooks.dependencies import ReceiptDep, SourceCacheDep, SourceDep
from gateway.webhooks.repository import WebhookRepository
from gateway.webhooks.schemas import (
    ReceiptDetail,
    ReceiptRead,
    RotateSecret,
    SecretIssued,
    SourceCreate,
    SourceCreated,
    SourceRead,
)
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage

router = APIRouter(prefix="/api/v1/admin", tags=["admin: webhooks"])

READ = [Depends(require_gateway_scopes("webhooks:read"))]
WRITE = [Depends(require_gateway_scopes("webhooks:write"))]


def _source(source: WebhookSource) -> SourceRead:
    return SourceRead(
        id=source.id,
        name=source.name,
        description=source.description,
        enabled=source.enabled,
        created_at=source.created_at,
        url_path=f"/webhooks/{source.name}",
    )


def _secret(secret: WebhookSecret, previous_expire: datetime | None = None) -> SecretIssued:
    return SecretIssued(
        id=secret.id,
        secret=secret.secret,
        created_at=secret.created_at,
        previous_secrets_expire_at=previous_expire,
    )


@router.post(
    "/webhook-sources",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook source",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 409),
)
async def create_source(body: SourceCreate, session: SessionDep) -> SourceCreated:
    """Allow a partner system to post to `/webhooks/{name}`. The response carries the
    signing secret once; store it in the partner system."""
    source, secret = await service.create_source(session, body.name, body.description)
    return SourceCreated(**_source(source).model_dump(), secret=_secret(secret))


@router.get(
    "/webhook-sources",
    summary="List webhook sources",
    dependencies=READ,
    responses=problem_responses(401, 403),
)
async def list_sources(session: SessionDep) -> list[SourceRead]:
    """Every registered source (secrets are never listed)."""
    return [_source(s) for s in await WebhookRepository(session).list_sources()]


@router.post(
    "/webhook-sources/{name}/secrets",
    status_code=status.HTTP_201_CREATED,
    summary="Rotate a source's signing secret",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 404),
)
async def rotate_secret(
    source: SourceDep, body: RotateSecret, session: SessionDep, cache: SourceCacheDep
) -> SecretIssued:
    """Issue a new secret. The current ones stay valid for `overlap_s` seconds (default one
    day), so the partner can switch without losing a webhook."""
    secret, until = await service.rotate_secret(session, source, body.overlap_s)
    cache.invalidate(source.name)
    return _secret(secret, until)


@router.get(
    "/webhook-receipts",
    summary="The webhook delivery log",
    dependencies=READ,
    responses=problem_responses(401, 403),
)
async def list_receipts(
    session: SessionDep,
    page: CursorDep,
    source: Annotated[str | None, Query(max_length=64)] = None,
    receipt_status: Annotated[
        Literal["published", "processed", "ignored", "failed"] | None, Query(alias="status")
    ] = None,
) -> CursorPage[ReceiptRead]:
    """Received webhooks, oldest first, with what the consuming service reported."""
    items, next_cursor = await WebhookRepository(session).list_receipts(
        page, source=source, status=receipt_status
    )
    return CursorPage(items=[ReceiptRead.model_validate(r) for r in items], next_cursor=next_cursor)


def _detail(receipt: WebhookReceipt) -> ReceiptDetail:
    return ReceiptDetail(
        **ReceiptRead.model_validate(receipt).model_dump(),
        headers=receipt.headers,
        body=receipt.body.decode("utf-8", errors="replace"),
    )


@router.get(
    "/webhook-receipts/{receipt_id}",
    summary="One received webhook, with its raw body",
    dependencies=READ,
    responses=problem_responses(401, 403, 404),
)
async def get_receipt(receipt: ReceiptDep) -> ReceiptDetail:
    """The stored headers and body, and the processing status."""
    return _detail(receipt)


@router.post(
    "/webhook-receipts/{receipt_id}/replay",
    summary="Replay a received webhook",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 404),
)
async def replay_receipt(receipt: ReceiptDep, session: SessionDep) -> ReceiptDetail:
    """Publish the stored webhook again, e.g. after the consuming service was fixed. It gets a
    new event id, so the service processes it again."""
    return _detail(await service.replay(session, receipt))
