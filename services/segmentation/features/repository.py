from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Numeric, Text, cast, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.models import CustomerFeatures, customer_scope
from shared.auth import Principal
from shared.privacy import visible_customers

# Every write is one INSERT … ON CONFLICT DO UPDATE: whichever event about a customer
# arrives first creates the row, and concurrent consumers of different topics cannot lose
# each other's updates (the row lock serialises them; no read-modify-write in Python).


class CustomerFeaturesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: UUID, principal: Principal) -> CustomerFeatures | None:
        """The customer's features, if the customer is within the principal's data scope."""
        return (
            await self.session.scalars(
                select(CustomerFeatures).where(
                    CustomerFeatures.customer_id == customer_id,
                    visible_customers(principal, CustomerFeatures.customer_id, customer_scope),
                )
            )
        ).one_or_none()

    async def record_customer(self, customer_id: UUID, display_name: str) -> None:
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id, display_name=display_name
        )
        statement = statement.on_conflict_do_update(
            index_elements=[CustomerFeatures.customer_id],
            set_={"display_name": statement.excluded.display_name, "updated_at": func.now()},
        )
        await self.session.execute(statement)

    async def record_order(
        self, customer_id: UUID, *, total: Decimal, currency: str, placed_at: datetime
    ) -> None:
        """Count one order and add ``total`` to the customer's sum in ``currency``."""
        amount = literal(total, Numeric)
        previous = func.coalesce(
            cast(CustomerFeatures.total_spent.op("->>")(literal(currency, Text)), Numeric), 0
        )
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id,
            order_count=1,
            total_spent={currency: format(total, "f")},  # never "1E+2"
            last_order_at=placed_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[CustomerFeatures.customer_id],
            set_={
                "order_count": CustomerFeatures.order_count + 1,
                "total_spent": CustomerFeatures.total_spent.op("||")(
                    func.jsonb_build_object(literal(currency, Text), cast(previous + amount, Text))
                ),
                # Orders may be consumed out of order across partitions' retries: keep the
                # latest, not the last seen. GREATEST ignores NULL.
                "last_order_at": func.greatest(
                    CustomerFeatures.last_order_at, statement.excluded.last_order_at
                ),
                "updated_at": func.now(),
            },
        )
        await self.session.execute(statement)

    async def record_interaction(self, customer_id: UUID, *, occurred_at: datetime) -> None:
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id, interaction_count=1, last_interaction_at=occurred_at
        )
        statement = statement.on_conflict_do_update(
            index_elements=[CustomerFeatures.customer_id],
            set_={
                "interaction_count": CustomerFeatures.interaction_count + 1,
                "last_interaction_at": func.greatest(
                    CustomerFeatures.last_interaction_at,
                    statement.excluded.last_interaction_at,
                ),
                "updated_at": func.now(),
            },
        )
        await self.session.execute(statement)

    async def forget(self, customer_id: UUID) -> None:
        await self.session.execute(
            delete(CustomerFeatures).where(CustomerFeatures.customer_id == customer_id)
        )

    async def fold_into(self, survivor_id: UUID, merged_id: UUID) -> None:
        """A merge: add the duplicate's counts and spend to the survivor's, then forget it."""
        merged = await self.session.get(CustomerFeatures, merged_id, with_for_update=True)
        if merged is None:
            return
        survivor = await self.session.get(CustomerFeatures, survivor_id, with_for_update=True)
        if survivor is None:  # nothing known about the survivor yet: the row changes hands
            await self.session.execute(
                update(CustomerFeatures)
                .where(CustomerFeatures.customer_id == merged_id)
                .values(customer_id=survivor_id)
            )
            return
        survivor.order_count += merged.order_count
        survivor.interaction_count += merged.interaction_count
        spent = dict(survivor.total_spent)
        for currency, amount in merged.total_spent.items():
            spent[currency] = str(Decimal(spent.get(currency, "0")) + Decimal(amount))
        survivor.total_spent = spent
        survivor.last_order_at = _latest(survivor.last_order_at, merged.last_order_at)
        survivor.last_interaction_at = _latest(
            survivor.last_interaction_at, merged.last_interaction_at
        )
        await self.session.delete(merged)
        await self.session.flush()


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)
