"""The privacy export: everything Rapport holds about one person, in one JSON document.

customer360 assembles it: its own profile, identity keys, audit trail, 360 aggregates and
timeline, plus each other service's records of the person, fetched from their public API
with a short-lived service token. This is the one synchronous fan-out in Rapport, on
purpose: an export is rare, initiated by an admin or a data-protection request, and must be
complete and current — an event-built copy could lag or miss records. If any service cannot
answer, the export fails with 503: a partial export is never presented as complete.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.config import Settings
from services.customer360.customer.schemas import AuditEntryRead, CustomerRead
from services.customer360.models import AuditEntry, Customer, CustomerIdentity
from services.customer360.view.repository import ViewRepository
from services.customer360.view.schemas import TimelineEntryRead
from shared.auth import Principal, mint_internal_token
from shared.errors import ServiceUnavailable
from shared.pagination import CursorParams

__all__ = ["export_customer"]

#: What the export reads in the other services, and under which scopes.
_SCOPES = frozenset({"interactions:read", "orders:read", "segments:read", "customers:pii"})


async def _pages(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page_params = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=page_params)
        response.raise_for_status()
        body = response.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def _other_services(
    settings: Settings,
    customer_ids: list[UUID],
    mounts: dict[str, httpx.AsyncBaseTransport] | None,
) -> dict[str, Any]:
    token = mint_internal_token(
        Principal(subject="customer360-export", kind="service", scopes=_SCOPES),
        settings.internal_token_secret,
    )
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(settings.export_timeout_s)
    found: dict[str, Any] = {"interactions": [], "orders": [], "segmentation": []}
    try:
        async with httpx.AsyncClient(headers=headers, timeout=timeout, mounts=mounts) as client:
            for customer_id in customer_ids:
                found["interactions"] += await _pages(
                    client,
                    f"{settings.interactions_url}/interactions",
                    {"customer_id": str(customer_id)},
                )
                found["orders"] += await _pages(
                    client, f"{settings.orders_url}/orders", {"customer_id": str(customer_id)}
                )
                features = await client.get(
                    f"{settings.segmentation_url}/customers/{customer_id}/features"
                )
                if features.status_code != 404:
                    features.raise_for_status()
                    found["segmentation"].append(features.json())
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ServiceUnavailable(
            f"the export needs every service and one could not answer ({exc.__class__.__name__});"
            " nothing partial is returned — try again shortly",
            headers={"Retry-After": "5"},
        ) from None
    return found


async def export_customer(
    session: AsyncSession,
    customer: Customer,
    settings: Settings,
    principal: Principal,
    *,
    mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> dict[str, Any]:
    """``mounts`` route service URLs to other transports (tests run the services in-process)."""
    merged = list(
        await session.scalars(select(Customer).where(Customer.merged_into == customer.id))
    )
    ids = [customer.id, *(m.id for m in merged)]
    identities = await session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value).where(
            CustomerIdentity.customer_id == customer.id
        )
    )
    audit = await session.scalars(
        select(AuditEntry).where(AuditEntry.customer_id.in_(ids)).order_by(AuditEntry.id)
    )
    view = ViewRepository(session)
    summary = await view.summary(customer.id)
    timeline, cursor = await view.timeline(customer.id, CursorParams(limit=10_000))
    return {
        "exported_at": datetime.now(UTC).isoformat(),
        "exported_by": principal.subject,
        "customer": CustomerRead.for_principal(customer, principal).model_dump(mode="json"),
        "merged_profiles": [
            CustomerRead.for_principal(m, principal).model_dump(mode="json") for m in merged
        ],
        "identities": [{"kind": k, "value": v} for k, v in identities],
        "audit": [AuditEntryRead.model_validate(e).model_dump(mode="json") for e in audit],
        "summary": (
            {c.name: getattr(summary, c.key) for c in summary.__table__.columns}
            if summary is not None
            else None
        ),
        "timeline": [TimelineEntryRead.model_validate(e).model_dump(mode="json") for e in timeline],
        "timeline_truncated": cursor is not None,
        **await _other_services(settings, ids, mounts),
    }
