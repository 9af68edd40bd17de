from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.interaction.repository import InteractionRepository
from services.interactions.interaction.schemas import InteractionCreate
from services.interactions.models import Interaction
from shared.events import InteractionRecorded
from shared.messaging import publish


async def record_interaction(session: AsyncSession, data: InteractionCreate) -> Interaction:
    """Store one touchpoint and queue ``InteractionRecorded`` in the same transaction."""
    interaction = await InteractionRepository(session).add(
        Interaction(
            customer_id=data.customer_id,
            channel=data.channel,
            kind=data.kind,
            direction=data.direction,
            occurred_at=data.occurred_at or datetime.now(UTC),
            summary=data.summary,
        )
    )
    await publish(
        session,
        InteractionRecorded(
            customer_id=interaction.customer_id,
            interaction_id=interaction.id,
            channel=interaction.channel,
            kind=interaction.kind,
            direction=data.direction,
            occurred_at=interaction.occurred_at,
            summary=interaction.summary,
        ),
    )
    return interaction
