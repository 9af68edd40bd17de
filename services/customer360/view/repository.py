"""SQL of the 360 view: folding events into the aggregates and the timeline, and reading them.

Writes are single statements that read and change a row in the database (``x = x + 1``,
``greatest(…)``, ``INSERT … ON CONFLICT``), never read-modify-write in Python, so two
consumers touching one customer cannot lose each other's updates. Order and ticket state is
kept per order/ticket so a status change is applied once, by comparing with what is stored,
whatever order or how often the events arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Select,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import (
    Customer,
    CustomerOrder,
    CustomerSpend,
    CustomerSummary,
    CustomerTicket,
    TimelineEntry,
)
from shared.pagination import CursorParams, paginate

__all__ = ["OPEN_TICKET_STATUSES", "VOID_ORDER_STATUSES", "ViewRepository"]

#: Order statuses whose amount is not spend (the money never came, or went back).
VOID_ORDER_STATUSES = frozenset({"cancelled", "canceled", "refunded", "voided", "failed"})
#: Ticket statuses that count as open (waiting on us or on the customer).
OPEN_TICKET_STATUSES = ("open", "pending")
#: How many merges deep an id is followed to its survivor.
_MAX_MERGE_HOPS = 16
#: Customer-keyed tables of the view, emptied together by an erase.
_VIEW_TABLES = (CustomerSummary, CustomerSpend, CustomerOrder, CustomerTicket, TimelineEntry)


class ViewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- routing ------------------------------------------------------------------------
    async def resolve(self, customer_id: UUID) -> UUID | None:
        """Where events about ``customer_id`` belong: itself, the survivor of the merges it
        went through, or nowhere (``None``) once erased. Unknown ids are kept as they are."""
        current = customer_id
        for _ in range(_MAX_MERGE_HOPS):
            row = (
                await self.session.execute(
                    select(Customer.status, Customer.merged_into).where(Customer.id == current)
                )
            ).first()
            if row is None:
                return current
            if row.status == "erased":
                return None
            if row.merged_into is None:
                return current
            current = row.merged_into
        return current

    # --- timeline -----------------------------------------------------------------------
    async def add_entry(
        self,
        customer_id: UUID,
        *,
        event_id: UUID,
        occurred_at: datetime,
        kind: str,
        title: str,
        summary: str | None = None,
        reference_id: UUID | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """One timeline entry per event: a second delivery of the same event id is a no-op
        (the inbox stops redeliveries already; this also covers replays into a new group)."""
        await self.session.execute(
            insert(TimelineEntry)
            .values(
                customer_id=customer_id,
                event_id=event_id,
                occurred_at=occurred_at,
                kind=kind[:80],
                title=title[:300],
                summary=summary,
                reference_id=reference_id,
                data=data or {},
            )
            .on_conflict_do_nothing(index_elements=[TimelineEntry.event_id])
        )

    async def timeline(
        self, customer_id: UUID, params: CursorParams, kinds: Sequence[str] = ()
    ) -> tuple[list[TimelineEntry], str | None]:
        """Newest first. A kind with a dot matches exactly (``order.placed``); one without
        matches its family (``order`` → ``order.placed``, ``order.status_changed``)."""
        statement: Select[Any] = select(TimelineEntry).where(
            TimelineEntry.customer_id == customer_id
        )
        if kinds:
            statement = statement.where(
                or_(
                    *(
                        TimelineEntry.kind == k
                        if "." in k
                        else TimelineEntry.kind.startswith(f"{k}.", autoescape=True)
                        for k in kinds
                    )
                )
            )
        return await paginate(
            self.session,
            statement,
            keys=[TimelineEntry.occurred_at, TimelineEntry.id],
            key_of=lambda e: (e.occurred_at, e.id),
            params=params,
            descending=True,
        )

    # --- aggregates: reads --------------------------------------------------------------
    async def summary(self, customer_id: UUID) -> CustomerSummary | None:
        return await self.session.get(CustomerSummary, customer_id)

    async def spend(self, customer_id: UUID) -> list[CustomerSpend]:
        return list(
            (
                await self.session.scalars(
                    select(CustomerSpend)
                    .where(CustomerSpend.customer_id == customer_id)
                    .order_by(CustomerSpend.currency)
                )
            ).all()
        )

    # --- aggregates: writes -------------------------------------------------------------
    async def ensure_summary(self, customer_id: UUID) -> None:
        """The customer's aggregate row, created by whichever event comes first."""
        await self.session.execute(
            insert(CustomerSummary).values(customer_id=customer_id).on_conflict_do_nothing()
        )

    async def _update_summary(self, customer_id: UUID, **values: Any) -> None:
        await self.session.execute(
            update(CustomerSummary)
            .where(CustomerSummary.customer_id == customer_id)
            .values(updated_at=func.now(), **values)
        )

    async def order_placed(
        self,
        customer_id: UUID,
        *,
        order_id: UUID,
        total: Decimal,
        currency: str,
        placed_at: datetime,
    ) -> None:
        statement = insert(CustomerOrder).values(
            order_id=order_id,
            customer_id=customer_id,
            total=total,
            currency=currency,
            placed_at=placed_at,
            status="placed",
            status_at=placed_at,
        )
        # A status change seen first already created the row: keep its (newer) status.
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerOrder.order_id],
                set_={
                    "total": statement.excluded.total,
                    "currency": statement.excluded.currency,
                    "placed_at": statement.excluded.placed_at,
                },
            )
        )
        await self._reconcile_order(order_id)

    async def order_status_changed(
        self, customer_id: UUID, *, order_id: UUID, status: str, changed_at: datetime
    ) -> None:
        statement = insert(CustomerOrder).values(
            order_id=order_id, customer_id=customer_id, status=status, status_at=changed_at
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerOrder.order_id],
                set_={"status": statement.excluded.status, "status_at": changed_at},
                # A late, older status change must not overwrite a newer one.
                where=or_(
                    CustomerOrder.status_at.is_(None),
                    CustomerOrder.status_at <= statement.excluded.status_at,
                ),
            )
        )
        await self._reconcile_order(order_id)

    async def _reconcile_order(self, order_id: UUID) -> None:
        """Bring the order in or out of the spend to match its stored status and total."""
        order = (
            await self.session.execute(
                select(
                    CustomerOrder.customer_id,
                    CustomerOrder.total,
                    CustomerOrder.currency,
                    CustomerOrder.placed_at,
                    CustomerOrder.status,
                    CustomerOrder.counted,
                ).where(CustomerOrder.order_id == order_id)
            )
        ).one()
        should_count = order.total is not None and order.status not in VOID_ORDER_STATUSES
        if should_count == order.counted:
            return
        delta = 1 if should_count else -1
        customer_id, amount = order.customer_id, order.total * delta
        await self.session.execute(
            update(CustomerOrder)
            .where(CustomerOrder.order_id == order_id)
            .values(counted=should_count)
        )
        await self.ensure_summary(customer_id)
        if delta > 0:
            spend = insert(CustomerSpend).values(
                customer_id=customer_id, currency=order.currency, order_count=1, total=amount
            )
            await self.session.execute(
                spend.on_conflict_do_update(
                    index_elements=[CustomerSpend.customer_id, CustomerSpend.currency],
                    set_={
                        "order_count": CustomerSpend.order_count + 1,
                        "total": CustomerSpend.total + amount,
                    },
                )
            )
        else:  # a counted order's currency row exists (and CHECK would refuse a -1 insert)
            await self.session.execute(
                update(CustomerSpend)
                .where(
                    CustomerSpend.customer_id == customer_id,
                    CustomerSpend.currency == order.currency,
                )
                .values(
                    order_count=CustomerSpend.order_count - 1, total=CustomerSpend.total + amount
                )
            )
        if delta > 0:
            await self._update_summary(
                customer_id,
                order_count=CustomerSummary.order_count + 1,
                first_order_at=func.least(CustomerSummary.first_order_at, order.placed_at),
                last_order_at=func.greatest(CustomerSummary.last_order_at, order.placed_at),
            )
            return
        await self.session.execute(
            delete(CustomerSpend).where(
                CustomerSpend.customer_id == customer_id,
                CustomerSpend.currency == order.currency,
                CustomerSpend.order_count == 0,
            )
        )
        await self._update_summary(
            customer_id,
            order_count=CustomerSummary.order_count - 1,
            **self._order_dates(customer_id),
        )

    @staticmethod
    def _order_dates(customer_id: UUID) -> dict[str, Any]:
        """First and last order time recomputed from the orders that count."""
        counted = and_(CustomerOrder.customer_id == customer_id, CustomerOrder.counted)
        return {
            "first_order_at": select(func.min(CustomerOrder.placed_at))
            .where(counted)
            .scalar_subquery(),
            "last_order_at": select(func.max(CustomerOrder.placed_at))
            .where(counted)
            .scalar_subquery(),
        }

    async def interaction(self, customer_id: UUID, *, occurred_at: datetime, channel: str) -> None:
        await self.ensure_summary(customer_id)
        newer = or_(
            CustomerSummary.last_interaction_at.is_(None),
            CustomerSummary.last_interaction_at <= occurred_at,
        )
        await self._update_summary(
            customer_id,
            last_interaction_channel=case(
                (newer, literal(channel)), else_=CustomerSummary.last_interaction_channel
            ),
            last_interaction_at=func.greatest(CustomerSummary.last_interaction_at, occurred_at),
        )

    async def ticket(
        self, customer_id: UUID, *, ticket_id: UUID, status: str, at: datetime, opened: bool
    ) -> None:
        """Store the ticket's status (``opened``: a ``TicketOpened``, which never overrides a
        status change seen before it) and recount the customer's open tickets."""
        statement = insert(CustomerTicket).values(
            ticket_id=ticket_id, customer_id=customer_id, status=status, status_at=at
        )
        if opened:
            statement = statement.on_conflict_do_nothing(index_elements=[CustomerTicket.ticket_id])
        else:
            statement = statement.on_conflict_do_update(
                index_elements=[CustomerTicket.ticket_id],
                set_={"status": statement.excluded.status, "status_at": at},
                where=or_(
                    CustomerTicket.status_at.is_(None),
                    CustomerTicket.status_at <= statement.excluded.status_at,
                ),
            )
        await self.session.execute(statement)
        owner = await self.session.scalar(
            select(CustomerTicket.customer_id).where(CustomerTicket.ticket_id == ticket_id)
        )
        assert owner is not None
        await self.ensure_summary(owner)
        await self._update_summary(owner, open_tickets=self._open_tickets(owner))

    @staticmethod
    def _open_tickets(customer_id: UUID) -> Any:
        return (
            select(func.count())
            .select_from(CustomerTicket)
            .where(
                CustomerTicket.customer_id == customer_id,
                CustomerTicket.status.in_(OPEN_TICKET_STATUSES),
            )
            .scalar_subquery()
        )

    async def csat(self, customer_id: UUID, score: int) -> None:
        await self.ensure_summary(customer_id)
        await self._update_summary(
            customer_id,
            csat_sum=CustomerSummary.csat_sum + score,
            csat_count=CustomerSummary.csat_count + 1,
        )

    async def nps(self, customer_id: UUID, score: int, answered_at: datetime) -> None:
        await self.ensure_summary(customer_id)
        newer = or_(
            CustomerSummary.last_nps_at.is_(None), CustomerSummary.last_nps_at <= answered_at
        )
        await self._update_summary(
            customer_id,
            last_nps=case((newer, literal(score)), else_=CustomerSummary.last_nps),
            last_nps_at=func.greatest(CustomerSummary.last_nps_at, answered_at),
        )

    async def segment_entered(self, customer_id: UUID, segment_id: UUID) -> None:
        await self.ensure_summary(customer_id)
        ids = CustomerSummary.segment_ids
        await self._update_summary(
            customer_id,
            segment_ids=case(
                (ids.any_() == segment_id, ids), else_=func.array_append(ids, segment_id)
            ),
        )

    async def segment_exited(self, customer_id: UUID, segment_id: UUID) -> None:
        await self.ensure_summary(customer_id)
        await self._update_summary(
            customer_id, segment_ids=func.array_remove(CustomerSummary.segment_ids, segment_id)
        )

    async def scored(self, customer_id: UUID, scores: dict[str, Any], scored_at: datetime) -> None:
        """Segmentation's latest scores; an older scoring arriving late changes nothing."""
        await self.ensure_summary(customer_id)
        await self.session.execute(
            update(CustomerSummary)
            .where(
                CustomerSummary.customer_id == customer_id,
                or_(CustomerSummary.scored_at.is_(None), CustomerSummary.scored_at <= scored_at),
            )
            .values(scored_at=scored_at, updated_at=func.now(), **scores)
        )

    async def loyalty_tier(self, customer_id: UUID, tier: str | None, changed_at: datetime) -> None:
        """The loyalty tier orders announced; an older change arriving late changes nothing."""
        await self.ensure_summary(customer_id)
        await self.session.execute(
            update(CustomerSummary)
            .where(
                CustomerSummary.customer_id == customer_id,
                or_(
                    CustomerSummary.loyalty_tier_at.is_(None),
                    CustomerSummary.loyalty_tier_at <= changed_at,
                ),
            )
            .values(loyalty_tier=tier, loyalty_tier_at=changed_at, updated_at=func.now())
        )

    # --- merge and erase ----------------------------------------------------------------
    async def merge(self, survivor_id: UUID, merged_id: UUID) -> None:
        """Move everything of ``merged_id`` to the survivor and combine the aggregates."""
        if survivor_id == merged_id:
            return
        await self.ensure_summary(survivor_id)
        for table in (TimelineEntry, CustomerOrder, CustomerTicket):
            await self.session.execute(
                update(table).where(table.customer_id == merged_id).values(customer_id=survivor_id)
            )
        moved = insert(CustomerSpend).from_select(
            ["customer_id", "currency", "order_count", "total"],
            select(
                literal(survivor_id),
                CustomerSpend.currency,
                CustomerSpend.order_count,
                CustomerSpend.total,
            ).where(CustomerSpend.customer_id == merged_id),
        )
        await self.session.execute(
            moved.on_conflict_do_update(
                index_elements=[CustomerSpend.customer_id, CustomerSpend.currency],
                set_={
                    "order_count": CustomerSpend.order_count + moved.excluded.order_count,
                    "total": CustomerSpend.total + moved.excluded.total,
                },
            )
        )
        await self.session.execute(
            delete(CustomerSpend).where(CustomerSpend.customer_id == merged_id)
        )

        merged = (
            await self.session.execute(
                delete(CustomerSummary)
                .where(CustomerSummary.customer_id == merged_id)
                .returning(*CustomerSummary.__table__.columns)
            )
        ).first()
        values: dict[str, Any] = {"open_tickets": self._open_tickets(survivor_id)}
        if merged is not None:
            s = CustomerSummary
            values |= {
                "order_count": s.order_count + merged.order_count,
                "first_order_at": func.least(s.first_order_at, merged.first_order_at),
                "last_order_at": func.greatest(s.last_order_at, merged.last_order_at),
                "csat_sum": s.csat_sum + merged.csat_sum,
                "csat_count": s.csat_count + merged.csat_count,
                # The union of both; segmentation re-evaluates the survivor anyway.
                "segment_ids": text(
                    "ARRAY(SELECT DISTINCT s FROM unnest(customer360.customer_summary.segment_ids"
                    " || :merged_segments) AS s)"
                ).bindparams(
                    bindparam("merged_segments", list(merged.segment_ids), type_=ARRAY(Uuid))
                ),
            }
            if merged.last_interaction_at is not None:
                newer = or_(
                    s.last_interaction_at.is_(None),
                    s.last_interaction_at < merged.last_interaction_at,
                )
                values["last_interaction_at"] = case(
                    (newer, literal(merged.last_interaction_at)), else_=s.last_interaction_at
                )
                values["last_interaction_channel"] = case(
                    (newer, literal(merged.last_interaction_channel)),
                    else_=s.last_interaction_channel,
                )
            if merged.last_nps_at is not None:
                newer = or_(s.last_nps_at.is_(None), s.last_nps_at < merged.last_nps_at)
                values["last_nps"] = case((newer, literal(merged.last_nps)), else_=s.last_nps)
                values["last_nps_at"] = case(
                    (newer, literal(merged.last_nps_at)), else_=s.last_nps_at
                )
            if merged.scored_at is not None:
                newer = or_(s.scored_at.is_(None), s.scored_at < merged.scored_at)
                for field in _SCORE_FIELDS:
                    values[field] = case(
                        (newer, literal(getattr(merged, field), s.__table__.c[field].type)),
                        else_=getattr(s, field),
                    )
        await self._update_summary(survivor_id, **values)

    async def erase(self, customer_id: UUID) -> None:
        """A privacy erase: nothing of the customer stays in the view."""
        for table in _VIEW_TABLES:
            await self.session.execute(delete(table).where(table.customer_id == customer_id))


_SCORE_FIELDS = (
    "recency",
    "frequency",
    "monetary",
    "rfm_segment",
    "lifecycle_stage",
    "clv",
    "clv_currency",
    "churn_risk",
    "scored_at",
)
