from typing import Any

from fastapi import APIRouter, Depends, Request

from services.customer360.customer.dependencies import CustomerDep
from services.customer360.privacy.export import export_customer
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(tags=["privacy"])


@router.get(
    "/customers/{customer_id}/export",
    summary="Export everything held about a person",
    dependencies=[Depends(require_scopes("customers:read", "customers:pii"))],
    responses=problem_responses(401, 403, 404, 410, 503),
)
async def export(
    customer: CustomerDep, session: SessionDep, principal: PrincipalDep, request: Request
) -> dict[str, Any]:
    """A data-subject access request: the profile (and profiles merged into it), identity
    keys, audit trail, 360 aggregates and timeline, and every interaction, order and segment
    feature the other services hold — one machine-readable JSON document. Fetched live from
    each service; if one cannot answer, `503` (never a partial export)."""
    return await export_customer(
        session,
        customer,
        request.app.state.settings,
        principal,
        mounts=getattr(request.app.state, "export_mounts", None),
    )
