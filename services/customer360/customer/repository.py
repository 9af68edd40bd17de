from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import AuditEntry, Customer, CustomerSummary
from shared.auth import Principal
from shared.pagination import CursorParams, paginate
from shared.privacy import data_scope

SortKey = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "display_name", "-display_name"
]


@dataclass(frozen=True)
class CustomerFilter:
    kind: str | None = None
    tags: Sequence[str] = ()
    owner_id: str | None = None
    team_id: str | None = None
    lifecycle_stage: str | None = None
    company_id: UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    #: ``{field key: value}`` — equality on custom-field values.
    custom_fields: dict[str, Any] | None = None
    segment_id: UUID | None = None

    def apply(self, statement: Select[Any]) -> Select[Any]:
        c = Customer
        conditions: list[tuple[Any, Callable[[Any], ColumnElement[bool]]]] = [
            (self.kind, lambda v: c.kind == v),
            (self.owner_id, lambda v: c.owner_id == v),
            (self.team_id, lambda v: c.team_id == v),
            (self.lifecycle_stage, _lifecycle_stage_is),
            (self.segment_id, _in_segment),
            (self.company_id, lambda v: c.company_id == v),
            (self.created_after, lambda v: c.created_at >= v),
            (self.created_before, lambda v: c.created_at < v),
            (self.updated_after, lambda v: c.updated_at >= v),
            (self.updated_before, lambda v: c.updated_at < v),
            (list(self.tags) or None, lambda v: c.tags.contains(v)),
            (self.custom_fields or None, lambda v: c.custom_fields.contains(v)),
        ]
        for value, condition in conditions:
            if value is not None:
                statement = statement.where(condition(value))
        return statement


def _lifecycle_stage_is(stage: str) -> ColumnElement[bool]:
    """The stage segmentation computed (from the 360 summary), else the one set on the
    profile (e.g. ``prospect`` by resolution, or by hand)."""
    s = CustomerSummary
    computed = exists().where(s.customer_id == Customer.id, s.lifecycle_stage.is_not(None))
    return or_(
        Customer.id.in_(select(s.customer_id).where(s.lifecycle_stage == stage)),
        and_(Customer.lifecycle_stage == stage, ~computed),
    )


def _in_segment(segment_id: UUID) -> ColumnElement[bool]:
    """Currently a member, as the segment events told the 360 summary."""
    s = CustomerSummary
    return Customer.id.in_(select(s.customer_id).where(s.segment_ids.contains([segment_id])))


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: UUID, principal: Principal) -> Customer | None:
        """The customer (in any status), if it is within the principal's data scope."""
        return (
            await self.session.scalars(
                select(Customer).where(
                    Customer.id == customer_id,
                    data_scope(principal, Customer.owner_id, Customer.team_id),
                )
            )
        ).one_or_none()

    async def list_page(
        self,
        params: CursorParams,
        principal: Principal,
        where: CustomerFilter,
        sort: SortKey = "created_at",
    ) -> tuple[list[Customer], str | None]:
        statement = where.apply(
            select(Customer).where(
                Customer.status == "active",
                data_scope(principal, Customer.owner_id, Customer.team_id),
            )
        )
        column = getattr(Customer, sort.lstrip("-"))
        return await paginate(
            self.session,
            statement,
            keys=[column, Customer.id],
            key_of=lambda c: (getattr(c, sort.lstrip("-")), c.id),
            params=params,
            descending=sort.startswith("-"),
        )

    async def audit(
        self, customer_id: UUID, params: CursorParams
    ) -> tuple[list[AuditEntry], str | None]:
        return await paginate(
            self.session,
            select(AuditEntry).where(AuditEntry.customer_id == customer_id),
            keys=[AuditEntry.id],
            key_of=lambda e: (e.id,),
            params=params,
            descending=True,
        )
