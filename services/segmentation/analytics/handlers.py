"""Event handlers: keep the order history, follow merges and erasures, rescore on each event.

Each runs inside the consumer's transaction (with the inbox claim). Writes are upserts by
order id, so even an event that reaches a handler twice changes nothing the second time, and
the rescoring that follows finds nothing changed and publishes nothing.

Rescoring is deferred to the end of the consumer's transaction (:func:`deferred`): a group
of a hundred order events rescores its customers in one set-based pass (four statements)
instead of a hundred, and a customer with three orders in the group is scored once, on all
three. Called outside the consumer, a handler rescores at once.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.analytics.repository import AnalyticsRepository
from services.segmentation.analytics.scoring import ScoringPolicy
from services.segmentation.analytics.service import AnalyticsService, Clock, policy_from, utcnow
from services.segmentation.config import Settings
from shared.events import CustomerErased, CustomerMerged, Envelope, OrderPlaced, OrderStatusChanged
from shared.messaging import deferred

__all__ = ["AnalyticsHandlers"]


class AnalyticsHandlers:
    """The handlers, bound to a clock and the scoring thresholds.

    ``policy`` defaults to the service's settings, read on first use (never at import time).
    Tests build their own instance with a fixed clock.
    """

    def __init__(self, *, now: Clock = utcnow, policy: ScoringPolicy | None = None) -> None:
        self.now = now
        self._policy = policy

    @property
    def policy(self) -> ScoringPolicy:
        if self._policy is None:
            self._policy = policy_from(Settings())
        return self._policy

    def _service(self, session: AsyncSession) -> AnalyticsService:
        return AnalyticsService(session, self.policy, self.now)

    async def _rescore(self, session: AsyncSession, customer_id: UUID) -> None:
        pending = deferred(session, self.rescore_deferred)
        if pending is None:
            await self._service(session).rescore(customer_id)
        else:
            pending.add(customer_id)

    async def rescore_deferred(self, session: AsyncSession, customer_ids: set[UUID]) -> None:
        """The consumer's commit hook: score every customer the transaction's events touched."""
        await self._service(session).rescore(*customer_ids)

    async def on_order_placed(
        self, session: AsyncSession, event: OrderPlaced, envelope: Envelope
    ) -> None:
        customer_id = await AnalyticsRepository(session).record_placed(
            event.order_id,
            event.customer_id,
            total=event.total,
            currency=event.currency.upper(),
            placed_at=event.placed_at,
        )
        await self._rescore(session, customer_id)

    async def on_order_status_changed(
        self, session: AsyncSession, event: OrderStatusChanged, envelope: Envelope
    ) -> None:
        service = self._service(session)
        customer_id = await service.repo.resolve(event.customer_id)
        await service.repo.record_status(
            event.order_id,
            customer_id,
            status=event.status,
            changed_at=event.changed_at,
            total=event.total,
            paid_total=event.paid_total,
            refunded_total=event.refunded_total,
            currency=event.currency.upper() if event.currency else None,
        )
        await self._rescore(session, customer_id)

    async def on_customer_merged(
        self, session: AsyncSession, event: CustomerMerged, envelope: Envelope
    ) -> None:
        """The duplicate's orders become the survivor's; the survivor is rescored."""
        service = self._service(session)
        survivor = await service.repo.resolve(event.customer_id)
        if survivor == event.merged_id:  # a merge reversed by a later one: nothing to do
            return
        await service.repo.redirect(event.merged_id, survivor, event.merged_at)
        await service.repo.repoint_orders(event.merged_id, survivor)
        await self._rescore(session, survivor)

    async def on_customer_erased(
        self, session: AsyncSession, event: CustomerErased, envelope: Envelope
    ) -> None:
        await AnalyticsRepository(session).forget(event.customer_id)
