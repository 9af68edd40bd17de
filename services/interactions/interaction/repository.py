import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Interaction, customer_scope
from shared.auth import Principal
from shared.db import driver_connection
from shared.pagination import CursorParams, paginate
from shared.privacy import visible_customers


@dataclass(frozen=True, slots=True)
class NewInteraction:
    """One row to store through :meth:`InteractionRepository.store_many`."""

    id: UUID
    customer_id: UUID
    channel: str
    kind: str
    direction: str | None
    occurred_at: datetime
    agent_id: str | None
    subject: str | None
    summary: str | None
    metadata: dict[str, Any]
    source: str
    event_id: str | None


@dataclass(frozen=True, slots=True)
class InteractionFilters:
    customer_id: UUID | None = None
    channels: Sequence[str] = ()
    kinds: Sequence[str] = ()
    direction: str | None = None
    agent_id: str | None = None
    source: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


#: A whole batch in one statement and one round trip (FIELD-NOTES: a set-based insert is
#: 5-20x faster than row-by-row). An event id already stored for the source inserts
#: nothing; RETURNING names the rows really inserted.
_STORE = """
INSERT INTO interactions.interaction
    (id, customer_id, channel, kind, direction, occurred_at, agent_id, subject, summary,
     metadata, source, event_id)
SELECT id, customer_id, channel, kind, direction, occurred_at, agent_id, subject, summary,
       metadata::jsonb, source, event_id
FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[]
) AS b(id, customer_id, channel, kind, direction, occurred_at, agent_id, subject, summary,
       metadata, source, event_id)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id
"""


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store_many(self, rows: Sequence[NewInteraction]) -> set[UUID]:
        """Insert ``rows`` in the session's transaction; returns the ids really inserted (the
        others' (source, event_id) was stored before). Event ids must be distinct within
        ``rows`` per source."""
        if not rows:
            return set()
        # One order for every writer: two batches sharing event ids (a retry racing the
        # original) then wait on each other's unique-index entries instead of deadlocking.
        rows = sorted(rows, key=lambda r: (r.source, r.event_id or ""))
        driver = await driver_connection(self.session)
        records = await driver.fetch(
            _STORE,
            [r.id for r in rows],
            [r.customer_id for r in rows],
            [r.channel for r in rows],
            [r.kind for r in rows],
            [r.direction for r in rows],
            [r.occurred_at for r in rows],
            [r.agent_id for r in rows],
            [r.subject for r in rows],
            [r.summary for r in rows],
            [json.dumps(r.metadata, separators=(",", ":")) for r in rows],
            [r.source for r in rows],
            [r.event_id for r in rows],
        )
        return {UUID(bytes=record[0].bytes) for record in records}

    async def existing_ids(self, source: str, event_ids: Iterable[str]) -> dict[str, UUID]:
        """The interactions already stored under these event ids of ``source``."""
        wanted = list(event_ids)
        if not wanted:
            return {}
        driver = await driver_connection(self.session)
        records = await driver.fetch(
            "SELECT event_id, id FROM interactions.interaction "
            "WHERE source = $1 AND event_id = ANY($2::text[])",
            source,
            wanted,
        )
        return {record[0]: UUID(bytes=record[1].bytes) for record in records}

    async def known_customers(self, customer_ids: Iterable[UUID]) -> set[UUID]:
        """Which of these customers interactions has heard of (from customer events)."""
        wanted = list(set(customer_ids))
        if not wanted:
            return set()
        driver = await driver_connection(self.session)
        records = await driver.fetch(
            "SELECT customer_id FROM interactions.customer_scope "
            "WHERE customer_id = ANY($1::uuid[])",
            wanted,
        )
        return {UUID(bytes=record[0].bytes) for record in records}

    async def get(self, interaction_id: UUID, principal: Principal) -> Interaction | None:
        return (
            await self.session.scalars(
                select(Interaction).where(
                    Interaction.id == interaction_id,
                    visible_customers(principal, Interaction.customer_id, customer_scope),
                )
            )
        ).one_or_none()

    async def list(
        self,
        params: CursorParams,
        principal: Principal,
        filters: InteractionFilters,
        *,
        newest_first: bool = False,
    ) -> tuple[list[Interaction], str | None]:
        statement: Select[Interaction] = select(Interaction).where(
            visible_customers(principal, Interaction.customer_id, customer_scope)
        )
        if filters.customer_id is not None:
            statement = statement.where(Interaction.customer_id == filters.customer_id)
        if filters.channels:
            statement = statement.where(Interaction.channel.in_(filters.channels))
        if filters.kinds:
            statement = statement.where(Interaction.kind.in_(filters.kinds))
        if filters.direction is not None:
            statement = statement.where(Interaction.direction == filters.direction)
        if filters.agent_id is not None:
            statement = statement.where(Interaction.agent_id == filters.agent_id)
        if filters.source is not None:
            statement = statement.where(Interaction.source == filters.source)
        if filters.occurred_from is not None:
            statement = statement.where(Interaction.occurred_at >= filters.occurred_from)
        if filters.occurred_to is not None:
            statement = statement.where(Interaction.occurred_at < filters.occurred_to)
        return await paginate(
            self.session,
            statement,
            keys=[Interaction.occurred_at, Interaction.id],
            key_of=lambda i: (i.occurred_at, i.id),
            params=params,
            descending=newest_first,
        )
