"""Recording interactions: one at a time, or in batches of up to 1,000 (the ingest path).

Both paths store through one set-based statement (``InteractionRepository.store_many``) and
queue their events in the same transaction (the outbox).

Events, and why behaviour is coalesced: a human touchpoint (call, e-mail, chat, note…)
publishes one ``InteractionRecorded`` each. Web/app behaviour (page views, clicks, searches)
arrives at thousands per second; one outbox row, one Kafka message and one consumer
transaction in customer360 *and* segmentation per page view would multiply the ingest cost
several times over, and a 360 timeline with a line per page view is noise. So behaviour
publishes one ``BehaviourRecorded`` per customer per batch (counts per kind, first/last time,
the distinct URLs, products and search terms), which is what a view or a segment rule needs;
the individual events stay queryable here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.interaction.customers import CustomerResolver, ResolverUnavailable
from services.interactions.interaction.repository import InteractionRepository, NewInteraction
from services.interactions.interaction.schemas import (
    BEHAVIOUR_KINDS,
    InteractionCreate,
    ItemProblem,
    ItemResult,
)
from services.interactions.models import Interaction, customer_scope
from shared.auth import Principal
from shared.errors import NotFound, ServiceUnavailable, UnprocessableEntity
from shared.events import Event, InteractionRecorded
from shared.events.catalog import BehaviourRecorded
from shared.messaging import publish
from shared.privacy import visible_customers

__all__ = [
    "UnknownCustomer",
    "ingest",
    "known_customers",
    "record_interaction",
    "unknown_customer_problem",
    "validate_items",
]

#: At most this many distinct URLs / products / terms in one BehaviourRecorded.
_DISTINCT_LIMIT = 20


def _escape(step: int | str) -> str:
    return str(step).replace("~", "~0").replace("/", "~1")


def _validation_problem(index: int, error: ValidationError) -> ItemProblem:
    errors = [
        {
            "pointer": "/events/" + "/".join(_escape(s) for s in (index, *e["loc"])),
            "detail": e["msg"],
            "code": e["type"],
        }
        for e in error.errors(include_url=False)
    ]
    return ItemProblem(
        type=UnprocessableEntity.type_uri(),
        title=HTTPStatus.UNPROCESSABLE_ENTITY.phrase,
        status=422,
        detail="; ".join(f"{e['pointer']}: {e['detail']}" for e in errors[:5]),
        errors=errors,
    )


class UnknownCustomer(UnprocessableEntity):
    slug = "unknown-customer"


def unknown_customer_problem(pointer: str, customer_id: UUID) -> ItemProblem:
    return ItemProblem(
        type=UnknownCustomer.type_uri(),
        title=HTTPStatus.UNPROCESSABLE_ENTITY.phrase,
        status=422,
        detail=f"customer {customer_id} does not exist (or was erased)",
        errors=[{"pointer": pointer, "detail": "unknown customer", "code": "unknown_customer"}],
    )


def validate_items(
    raw: Sequence[Any],
) -> tuple[list[tuple[int, InteractionCreate]], dict[int, ItemResult]]:
    """Each item on its own: the valid ones by index, and an error result for each other."""
    valid: list[tuple[int, InteractionCreate]] = []
    failed: dict[int, ItemResult] = {}
    for index, item in enumerate(raw):
        try:
            valid.append((index, InteractionCreate.model_validate(item)))
        except ValidationError as exc:
            failed[index] = ItemResult(
                index=index, status="error", problem=_validation_problem(index, exc)
            )
    return valid, failed


def _row(data: InteractionCreate, source: str, now: datetime) -> NewInteraction:
    metadata = data.metadata.model_dump(mode="json", exclude_defaults=True) if data.metadata else {}
    return NewInteraction(
        id=uuid4(),
        customer_id=data.customer_id,
        channel=data.channel,
        kind=data.kind,
        direction=data.direction,
        occurred_at=(data.occurred_at or now).astimezone(UTC),
        agent_id=data.agent_id,
        subject=data.subject,
        summary=data.summary,
        metadata=metadata,
        source=source,
        event_id=data.event_id,
    )


def _recorded(row: NewInteraction) -> InteractionRecorded:
    return InteractionRecorded(
        customer_id=row.customer_id,
        interaction_id=row.id,
        channel=row.channel,
        kind=row.kind,
        direction=row.direction,
        occurred_at=row.occurred_at,
        summary=row.summary,
        title=row.subject,
        agent_id=row.agent_id,
        source=row.source,
        metadata=row.metadata,
    )


def _distinct(values: Sequence[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
            if len(seen) == _DISTINCT_LIMIT:
                break
    return list(seen)


def _behaviour(customer_id: UUID, rows: Sequence[NewInteraction]) -> BehaviourRecorded:
    ordered = sorted(rows, key=lambda r: r.occurred_at)
    counts: dict[str, int] = defaultdict(int)
    for row in ordered:
        counts[row.kind] += 1
    return BehaviourRecorded(
        customer_id=customer_id,
        counts=dict(counts),
        channels=_distinct([r.channel for r in ordered]),
        first_occurred_at=ordered[0].occurred_at,
        last_occurred_at=ordered[-1].occurred_at,
        last_channel=ordered[-1].channel,
        urls=_distinct([r.metadata.get("url") for r in ordered]),
        products=_distinct([r.metadata.get("product") for r in ordered]),
        search_terms=_distinct([r.metadata.get("term") for r in ordered]),
    )


def events_for(rows: Sequence[NewInteraction]) -> list[Event]:
    """What stored ``rows`` publish (see the module docstring)."""
    events: list[Event] = []
    behaviour: dict[UUID, list[NewInteraction]] = defaultdict(list)
    for row in rows:
        if row.kind in BEHAVIOUR_KINDS:
            behaviour[row.customer_id].append(row)
        else:
            events.append(_recorded(row))
    events += [_behaviour(customer_id, group) for customer_id, group in behaviour.items()]
    return events


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one valid item: its interaction id, and whether it is new."""

    id: UUID
    created: bool


async def store(
    session: AsyncSession, source: str, items: Mapping[int, InteractionCreate]
) -> dict[int, Stored]:
    """Store valid items (keyed by any index) with their events; an event id already stored
    for ``source``, or repeated within ``items``, yields the first one's id, not created."""
    now = datetime.now(UTC)
    rows: dict[int, NewInteraction] = {}
    first_of: dict[str, int] = {}  # event id → index of its first item
    repeats: dict[int, int] = {}  # index → index of the earlier item with its event id
    for index, data in items.items():
        if data.event_id is not None:
            if data.event_id in first_of:
                repeats[index] = first_of[data.event_id]
                continue
            first_of[data.event_id] = index
        rows[index] = _row(data, source, now)
    repository = InteractionRepository(session)
    inserted = await repository.store_many(list(rows.values()))
    outcome: dict[int, Stored] = {}
    stale: dict[str, int] = {}
    for index, row in rows.items():
        if row.id in inserted:
            outcome[index] = Stored(row.id, created=True)
        else:
            assert row.event_id is not None  # only an event id can conflict
            stale[row.event_id] = index
    existing = await repository.existing_ids(source, stale)
    for event_id, index in stale.items():
        outcome[index] = Stored(existing[event_id], created=False)
    for index, first in repeats.items():
        outcome[index] = Stored(outcome[first].id, created=False)
    stored_rows = [row for row in rows.values() if row.id in inserted]
    await publish(session, *events_for(stored_rows))
    return outcome


#: Most customers of one request looked up in customer360 (not yet known here).
ASK_AT_MOST = 20


async def known_customers(
    session: AsyncSession, resolver: CustomerResolver, customer_ids: Iterable[UUID]
) -> set[UUID]:
    """The ids that name a customer: those interactions knows from customer360's events,
    and — for a customer created moments ago, whose event has not arrived — those customer360
    confirms when asked (at most :data:`ASK_AT_MOST` per request; the rest count as unknown).
    Raises :class:`ResolverUnavailable` if customer360 must be asked and cannot answer."""
    wanted = set(customer_ids)
    known = await InteractionRepository(session).known_customers(wanted)
    for customer_id in sorted(wanted - known)[:ASK_AT_MOST]:
        if await resolver.exists(customer_id):
            known.add(customer_id)
    return known


async def ingest(
    session: AsyncSession,
    resolver: CustomerResolver,
    source: str,
    raw: Sequence[Any],
    principal: Principal | None = None,
) -> list[ItemResult]:
    """``POST /interactions:batch``: validate each item, refuse unknown customers — and, with
    a scoped ``principal``, customers outside its data scope, reported alike so existence is
    not revealed — and store the rest in one statement. Results by index, in the order sent."""
    valid, results = validate_items(raw)
    try:
        known = await known_customers(session, resolver, (d.customer_id for _, d in valid))
    except ResolverUnavailable as exc:
        raise ServiceUnavailable(
            f"cannot check the customers with customer360: {exc}", headers={"Retry-After": "5"}
        ) from None
    if principal is not None and principal.scope_mode != "all" and known:
        known = set(
            (
                await session.scalars(
                    select(customer_scope.c.customer_id).where(
                        customer_scope.c.customer_id.in_(known),
                        visible_customers(principal, customer_scope.c.customer_id, customer_scope),
                    )
                )
            ).all()
        )
    accepted: dict[int, InteractionCreate] = {}
    for index, data in valid:
        if data.customer_id in known:
            accepted[index] = data
        else:
            results[index] = ItemResult(
                index=index,
                status="error",
                problem=unknown_customer_problem(f"/events/{index}/customer_id", data.customer_id),
            )
    for index, stored in (await store(session, source, accepted)).items():
        results[index] = ItemResult(
            index=index, status="stored" if stored.created else "duplicate", id=stored.id
        )
    return [results[index] for index in range(len(raw))]


async def record_interaction(
    session: AsyncSession, resolver: CustomerResolver, data: InteractionCreate
) -> tuple[Interaction, bool]:
    """Store one touchpoint (``source`` ``api``) and queue its event in the same transaction.
    Returns the interaction and whether it is new (not a repeated ``event_id``). An unknown
    customer is a 422 problem."""
    try:
        known = await known_customers(session, resolver, [data.customer_id])
    except ResolverUnavailable as exc:
        raise ServiceUnavailable(
            f"cannot check the customer with customer360: {exc}", headers={"Retry-After": "5"}
        ) from None
    if data.customer_id not in known:
        problem = unknown_customer_problem("/body/customer_id", data.customer_id)
        raise UnknownCustomer(problem.detail, errors=problem.errors)
    stored = (await store(session, "api", {0: data}))[0]
    interaction = await session.get(Interaction, stored.id)
    if interaction is None:  # pragma: no cover - stored in this very transaction
        raise NotFound(f"interaction {stored.id} vanished")
    return interaction, stored.created
