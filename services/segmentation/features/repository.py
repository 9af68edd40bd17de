import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Numeric, Text, case, cast, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.analytics.scoring import NOT_COUNTING
from services.segmentation.models import (
    MAX_WINDOW_DAYS,
    CustomerEvent,
    CustomerFeatures,
    customer_scope,
)
from services.segmentation.segments.membership import LOCK_NAMESPACE
from shared.auth import Principal
from shared.db import driver_connection
from shared.privacy import visible_customers

# Every write is one INSERT … ON CONFLICT DO UPDATE: whichever event about a customer
# arrives first creates the row, and concurrent consumers of different topics cannot lose
# each other's updates (the row lock serialises them; no read-modify-write in Python).

#: Profile fields copied from customer events, with their column's length limit.
PROFILE_FIELDS: dict[str, int] = {
    "display_name": 300,
    "kind": 20,
    "owner_id": 200,
    "team_id": 100,
    "lifecycle_stage": 50,
    "locale": 35,
    "acquisition_source": 100,
    "acquisition_channel": 100,
}
CONSENT_COLUMNS = {"email": "email_consent", "sms": "sms_consent", "phone": "phone_consent"}

_WINDOWS = (30, 90, 365)

#: Statuses after which an order no longer counts in ``order_count`` and ``total_spent``.
_NOT_COUNTING = ", ".join(f"'{s}'" for s in sorted(NOT_COUNTING))


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return sorted({str(t)[:100] for t in value if t is not None})


def profile_values(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The feature columns a profile (created, or a partial update) sets."""
    values: dict[str, Any] = {
        k: _text(attributes[k], limit) for k, limit in PROFILE_FIELDS.items() if k in attributes
    }
    if "tags" in attributes:
        values["tags"] = _tags(attributes["tags"])
    consent = attributes.get("consent")
    if isinstance(consent, Mapping):
        for channel, state in consent.items():
            column = CONSENT_COLUMNS.get(channel)
            granted = state.get("granted") if isinstance(state, Mapping) else None
            granted = getattr(state, "granted", granted)
            if column is not None and isinstance(granted, bool):
                values[column] = granted
    return values


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

    async def upsert(self, customer_id: UUID, values: Mapping[str, Any]) -> None:
        """Set ``values`` (plain column values) on the customer's row, creating it."""
        statement = insert(CustomerFeatures).values(customer_id=customer_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[CustomerFeatures.customer_id],
            set_={**{k: statement.excluded[k] for k in values}, "updated_at": func.now()},
        )
        await self.session.execute(statement)

    async def record_customer(self, customer_id: UUID, display_name: str) -> None:
        await self.upsert(customer_id, {"display_name": display_name})

    async def record_order(
        self,
        customer_id: UUID,
        *,
        total: Decimal,
        currency: str,
        placed_at: datetime,
        attrs: Mapping[str, Any],
        now: datetime,
        lock: Sequence[UUID] = (),
    ) -> None:
        """Count one order, add ``total`` to the customer's sum in ``currency``, log it, and
        recount the rolling windows — one statement, as this runs for every order. It also
        takes the shared locks of the segments ``lock`` (what the evaluation that follows
        would otherwise take in a statement of its own)."""
        driver = await driver_connection(self.session)
        windows = ", ".join(
            f"count(*) FILTER (WHERE o.t > $5 - interval '{d} days' AND o.t <= $5) AS c{d}"
            for d in _WINDOWS
        )
        changes = ", ".join(
            f"min(o.t) FILTER (WHERE o.t > $5 - interval '{d} days' AND o.t <= $5) "
            f"+ interval '{d} days'"
            for d in _WINDOWS
        )
        await driver.execute(
            (
                "WITH locked AS (SELECT count(pg_advisory_xact_lock_shared($7::int, hashtext(x))) "
                "AS n FROM (SELECT x FROM unnest($8::text[]) AS x ORDER BY x) AS ordered), "
                "logged AS (INSERT INTO segmentation.customer_event "
                "(customer_id, type, occurred_at, attrs) VALUES ($1, 'order_placed', $2, $3)), "
                f"w AS (SELECT {windows}, LEAST({changes}, "
                "min(o.t) FILTER (WHERE o.t > $5)) AS change FROM ("
                "SELECT e.occurred_at AS t FROM segmentation.customer_event e "
                "WHERE e.customer_id = $1 AND e.type = 'order_placed' "
                f"AND e.occurred_at > $5 - interval '{MAX_WINDOW_DAYS} days' "
                "UNION ALL SELECT $2) AS o) "
                "INSERT INTO segmentation.customer_features AS f (customer_id, order_count, "
                "total_spent, first_order_at, last_order_at, orders_30d, orders_90d, "
                "orders_365d, windows_change_at) "
                "SELECT $1, 1, jsonb_build_object($4, $6), $2, $2, w.c30, w.c90, w.c365, "
                "w.change FROM w, locked ON CONFLICT (customer_id) DO UPDATE SET "
                "order_count = f.order_count + 1, "
                "total_spent = f.total_spent || jsonb_build_object($4, "
                "(COALESCE((f.total_spent ->> $4)::numeric, 0) + $6::numeric)::text), "
                # Orders may be consumed out of order across partitions' retries: keep the
                # latest, not the last seen. GREATEST and LEAST ignore NULL.
                "first_order_at = LEAST(f.first_order_at, EXCLUDED.first_order_at), "
                "last_order_at = GREATEST(f.last_order_at, EXCLUDED.last_order_at), "
                "orders_30d = EXCLUDED.orders_30d, orders_90d = EXCLUDED.orders_90d, "
                "orders_365d = EXCLUDED.orders_365d, "
                "windows_change_at = EXCLUDED.windows_change_at, updated_at = now()"
            )
            .replace("$2", "$2::timestamptz")
            .replace("$3", "$3::jsonb")
            .replace("$4", "$4::text")
            .replace("$5", "$5::timestamptz")
            .replace("$6", "$6::text"),
            customer_id,
            placed_at,
            json.dumps(dict(attrs)),
            currency,
            now,
            format(total, "f"),  # never "1E+2"
            LOCK_NAMESPACE,
            sorted({str(i) for i in lock}),
        )

    async def record_interaction(
        self,
        customer_id: UUID,
        *,
        occurred_at: datetime,
        channel: str | None = None,
        kind: str | None = None,
        count: int = 1,
    ) -> None:
        by_channel = {channel[:64]: count} if channel else {}
        by_kind = {kind[:64]: count} if kind else {}
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id,
            interaction_count=count,
            last_interaction_at=occurred_at,
            interactions_by_channel=by_channel,
            interactions_by_kind=by_kind,
        )
        set_: dict[str, Any] = {
            "interaction_count": CustomerFeatures.interaction_count + count,
            "last_interaction_at": func.greatest(
                CustomerFeatures.last_interaction_at,
                statement.excluded.last_interaction_at,
            ),
            "updated_at": func.now(),
        }
        for column, key in (
            (CustomerFeatures.interactions_by_channel, channel),
            (CustomerFeatures.interactions_by_kind, kind),
        ):
            if key:
                name = literal(key[:64], Text)
                total = func.coalesce(cast(column.op("->>")(name), Numeric), 0) + count
                set_[column.key] = column.op("||")(func.jsonb_build_object(name, total))
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerFeatures.customer_id], set_=set_
            )
        )

    async def record_ticket(self, customer_id: UUID, *, opened: int, newly_open: int) -> None:
        """``opened`` tickets more in total; ``newly_open`` more (or fewer) open right now."""
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id, ticket_count=opened, open_tickets=max(newly_open, 0)
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerFeatures.customer_id],
                set_={
                    "ticket_count": CustomerFeatures.ticket_count + opened,
                    "open_tickets": func.greatest(CustomerFeatures.open_tickets + newly_open, 0),
                    "updated_at": func.now(),
                },
            )
        )

    async def record_survey(
        self, customer_id: UUID, *, survey: str, score: int, answered_at: datetime
    ) -> None:
        """Keep the latest answer of each survey (answers may arrive out of order)."""
        score_column = getattr(CustomerFeatures, f"last_{survey}")
        at_column = getattr(CustomerFeatures, f"last_{survey}_at")
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id, **{score_column.key: score, at_column.key: answered_at}
        )
        newer = or_(at_column.is_(None), at_column <= statement.excluded[at_column.key])
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerFeatures.customer_id],
                set_={
                    score_column.key: case(
                        (newer, statement.excluded[score_column.key]), else_=score_column
                    ),
                    at_column.key: func.greatest(at_column, statement.excluded[at_column.key]),
                    "updated_at": func.now(),
                },
            )
        )

    async def record_loyalty_tier(
        self, customer_id: UUID, *, tier: str | None, changed_at: datetime
    ) -> None:
        """Keep the latest tier orders announced (changes may arrive out of order)."""
        statement = insert(CustomerFeatures).values(
            customer_id=customer_id, loyalty_tier=tier, loyalty_tier_at=changed_at
        )
        at = CustomerFeatures.loyalty_tier_at
        newer = or_(at.is_(None), at <= statement.excluded.loyalty_tier_at)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CustomerFeatures.customer_id],
                set_={
                    "loyalty_tier": case(
                        (newer, statement.excluded.loyalty_tier),
                        else_=CustomerFeatures.loyalty_tier,
                    ),
                    "loyalty_tier_at": func.greatest(at, statement.excluded.loyalty_tier_at),
                    "updated_at": func.now(),
                },
            )
        )

    async def recount_order(
        self, order_id: UUID, customer_id: UUID, status: str, changed_at: datetime
    ) -> bool:
        """An order's status becomes ``status``. When that takes it out of the orders that
        count (it is cancelled or fully refunded) or brings it back, ``order_count``,
        ``total_spent`` and the first and last order times follow, in one statement.

        The order is read as the analytics stored it from its ``OrderPlaced`` (this runs
        before they store the new status); a status change older than the stored one, or
        about an order not seen placed, changes nothing. ``True`` when the features changed.
        """
        driver = await driver_connection(self.session)
        changed = await driver.fetchval(
            f"""
            WITH o AS (
                SELECT currency, total,
                       CASE WHEN status NOT IN ({_NOT_COUNTING}) AND $3 IN ({_NOT_COUNTING})
                                THEN -1
                            WHEN status IN ({_NOT_COUNTING}) AND $3 NOT IN ({_NOT_COUNTING})
                                THEN 1
                       END AS sign
                FROM segmentation.customer_orders
                WHERE order_id = $1 AND placed_at IS NOT NULL AND total IS NOT NULL
                  AND currency IS NOT NULL
                  AND (status_changed_at IS NULL OR status_changed_at <= $4)
            ), counted AS (
                SELECT min(x.placed_at) AS first_at, max(x.placed_at) AS last_at
                FROM segmentation.customer_orders x
                WHERE x.customer_id = $2 AND x.placed_at IS NOT NULL
                  AND CASE WHEN x.order_id = $1 THEN $3 NOT IN ({_NOT_COUNTING})
                           ELSE x.status NOT IN ({_NOT_COUNTING}) END
            )
            UPDATE segmentation.customer_features f
            SET order_count = GREATEST(f.order_count + o.sign, 0),
                total_spent = f.total_spent || jsonb_build_object(o.currency, round(
                    COALESCE((f.total_spent ->> o.currency)::numeric, 0) + o.sign * o.total,
                    -- the sum's own scale ("0.30", not the stored "0.3000")
                    GREATEST(scale(COALESCE((f.total_spent ->> o.currency)::numeric, 0)),
                             scale(trim_scale(o.total))))::text),
                first_order_at = counted.first_at, last_order_at = counted.last_at,
                updated_at = now()
            FROM o, counted
            WHERE f.customer_id = $2 AND o.sign IS NOT NULL
            RETURNING true
            """.replace("$3", "$3::text").replace("$4", "$4::timestamptz"),
            order_id,
            customer_id,
            status,
            changed_at,
        )
        return bool(changed)

    async def log_event(
        self,
        customer_id: UUID,
        type_: str,
        occurred_at: datetime,
        attrs: Mapping[str, Any],
        times: int = 1,
    ) -> None:
        """Append to the customer's event log (the input of behaviour conditions); ``times``
        rows for an event that stands for several (coalesced behaviour)."""
        row = {
            "customer_id": customer_id,
            "type": type_,
            "occurred_at": occurred_at,
            "attrs": dict(attrs),
        }
        await self.session.execute(insert(CustomerEvent), [row] * max(times, 1))

    async def refresh_windows(self, customer_ids: Sequence[UUID], now: datetime) -> None:
        """Recount the rolling order windows from the event log, and when they next change:
        the oldest order inside a window leaves it, or a future-dated order enters it."""
        driver = await driver_connection(self.session)
        counts = ", ".join(
            f"count(e.id) FILTER (WHERE e.occurred_at > $2 - interval '{d} days') AS c{d}"
            for d in _WINDOWS
        )
        changes = ", ".join(
            f"min(e.occurred_at) FILTER (WHERE e.occurred_at > $2 - interval '{d} days') "
            f"+ interval '{d} days'"
            for d in _WINDOWS
        )
        await driver.execute(
            (
                "UPDATE segmentation.customer_features f SET "
                + ", ".join(f"orders_{d}d = w.c{d}" for d in _WINDOWS)
                + ", windows_change_at = LEAST(w.change, w.future) FROM ("
                f"SELECT c.id, {counts}, LEAST({changes}) AS change, "
                "(SELECT min(x.occurred_at) FROM segmentation.customer_event x "
                "WHERE x.customer_id = c.id AND x.type = 'order_placed' AND x.occurred_at > $2) "
                "AS future "
                "FROM unnest($1::uuid[]) AS c(id) LEFT JOIN segmentation.customer_event e "
                "ON e.customer_id = c.id AND e.type = 'order_placed' "
                f"AND e.occurred_at > $2 - interval '{MAX_WINDOW_DAYS} days' AND e.occurred_at <= $2 "
                "GROUP BY c.id) AS w WHERE f.customer_id = w.id"
            ).replace("$2", "$2::timestamptz"),
            list(customer_ids),
            now,
        )

    async def forget(self, customer_id: UUID) -> None:
        await self.session.execute(
            delete(CustomerFeatures).where(CustomerFeatures.customer_id == customer_id)
        )
        await self.session.execute(
            delete(CustomerEvent).where(CustomerEvent.customer_id == customer_id)
        )

    async def fold_into(self, survivor_id: UUID, merged_id: UUID) -> None:
        """A merge: add the duplicate's counts and spend to the survivor's, then forget it."""
        await self.session.execute(
            update(CustomerEvent)
            .where(CustomerEvent.customer_id == merged_id)
            .values(customer_id=survivor_id)
        )
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
        survivor.ticket_count += merged.ticket_count
        survivor.open_tickets += merged.open_tickets
        spent = dict(survivor.total_spent)
        for currency, amount in merged.total_spent.items():
            spent[currency] = str(Decimal(spent.get(currency, "0")) + Decimal(amount))
        survivor.total_spent = spent
        for column in ("interactions_by_channel", "interactions_by_kind"):
            counts = dict(getattr(survivor, column))
            for key, n in getattr(merged, column).items():
                counts[key] = int(counts.get(key, 0)) + int(n)
            setattr(survivor, column, counts)
        survivor.first_order_at = _earliest(survivor.first_order_at, merged.first_order_at)
        survivor.last_order_at = _latest(survivor.last_order_at, merged.last_order_at)
        survivor.last_interaction_at = _latest(
            survivor.last_interaction_at, merged.last_interaction_at
        )
        for survey in ("csat", "nps"):
            mine, theirs = (
                getattr(survivor, f"last_{survey}_at"),
                getattr(merged, f"last_{survey}_at"),
            )
            if theirs is not None and (mine is None or theirs > mine):
                setattr(survivor, f"last_{survey}", getattr(merged, f"last_{survey}"))
                setattr(survivor, f"last_{survey}_at", theirs)
        if merged.loyalty_tier_at is not None and (
            survivor.loyalty_tier_at is None or merged.loyalty_tier_at > survivor.loyalty_tier_at
        ):
            survivor.loyalty_tier = merged.loyalty_tier
            survivor.loyalty_tier_at = merged.loyalty_tier_at
        survivor.tags = sorted(set(survivor.tags) | set(merged.tags))
        await self.session.delete(merged)
        await self.session.flush()


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((t for t in (a, b) if t is not None), default=None)
