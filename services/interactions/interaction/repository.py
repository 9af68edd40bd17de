from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Interaction, customer_scope
from shared.auth import Principal
from shared.pagination import CursorParams, paginate
from shared.privacy import visible_customers


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, interaction: Interaction) -> Interaction:
        self.session.add(interaction)
        await self.session.flush()
        await self.session.refresh(interaction)
        return interaction

    async def list(
        self, params: CursorParams, principal: Principal, *, customer_id: UUID | None = None
    ) -> tuple[list[Interaction], str | None]:
        statement = select(Interaction).where(
            visible_customers(principal, Interaction.customer_id, customer_scope)
        )
        if customer_id is not None:
            statement = statement.where(Interaction.customer_id == customer_id)
        return await paginate(
            self.session,
            statement,
            keys=[Interaction.occurred_at, Interaction.id],
            key_of=lambda i: (i.occurred_at, i.id),
            params=params,
        )
