"""SQL of care plans: the rules, the projections kept from other services' events, and the
scheduler's set-based "fire this rule" statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, exists, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.careplan.occasions import (
    birthday_candidates,
    holiday_candidates,
    mmdd,
)
from services.interactions.careplan.schemas import DEFAULT_TITLES
from services.interactions.models import (
    CarePlanCustomer,
    CarePlanOccurrence,
    CarePlanOrder,
    CarePlanRule,
    CarePlanSegmentMember,
    SurveyResponse,
    Task,
    customer_scope,
)
from shared.pagination import CursorParams, paginate

_OCCURRENCE = CarePlanOccurrence.__table__.fullname  # type: ignore[attr-defined]
_CUSTOMER = CarePlanCustomer.__table__.fullname  # type: ignore[attr-defined]
_ORDER = CarePlanOrder.__table__.fullname  # type: ignore[attr-defined]
_MEMBER = CarePlanSegmentMember.__table__.fullname  # type: ignore[attr-defined]
_SURVEY = SurveyResponse.__table__.fullname  # type: ignore[attr-defined]
_TASK = Task.__table__.fullname  # type: ignore[attr-defined]
_SCOPE = customer_scope.fullname

#: The customer's timezone (validated when projected), else UTC.
_TZ = "coalesce(c.timezone, 'UTC')"
_NOW = "CAST(:now AS timestamptz)"


def _local(ts: str, tz: str = _TZ) -> str:
    return f"({ts} AT TIME ZONE {tz})::date"


# One SELECT per rule type giving (customer_id, tz, occurs_on) candidates; ``c`` is the
# customer projection (left-joined where the customer may not be in it).
_CANDIDATES: dict[str, str] = {
    "birthday": f"""
        SELECT c.customer_id, {_TZ} AS tz, d.occurs_on
        FROM unnest(CAST(:days AS date[]), CAST(:mmdds AS integer[])) AS d(occurs_on, mmdd)
        JOIN {_CUSTOMER} c ON c.birthday_mmdd = d.mmdd""",
    "holiday": f"""
        SELECT c.customer_id, {_TZ} AS tz, d.occurs_on
        FROM {_CUSTOMER} c CROSS JOIN unnest(CAST(:days AS date[])) AS d(occurs_on)""",
    "post_purchase": f"""
        SELECT o.customer_id, {_TZ} AS tz,
               {_local("o.placed_at")} + CAST(:days_after AS integer) AS occurs_on
        FROM {_ORDER} o LEFT JOIN {_CUSTOMER} c ON c.customer_id = o.customer_id
        WHERE o.placed_at >= {_NOW} - make_interval(days => CAST(:lookback AS integer))""",
    "low_csat": f"""
        SELECT r.customer_id, {_TZ} AS tz,
               {_local("r.answered_at")} + CAST(:days_after AS integer) AS occurs_on
        FROM {_SURVEY} r LEFT JOIN {_CUSTOMER} c ON c.customer_id = r.customer_id
        WHERE r.survey = 'csat' AND r.score <= CAST(:threshold AS integer)
          AND r.answered_at >= {_NOW} - make_interval(days => CAST(:lookback AS integer))""",
    # The latest multiple of the period since the anchor (entering the segment or stage, or
    # the rule's start if later): after downtime, one revisit, not a backlog of them.
    "revisit_segment": f"""
        SELECT customer_id, tz, anchor + ((today - anchor) / CAST(:every AS integer)) * CAST(:every AS integer) AS occurs_on
        FROM (
            SELECT m.customer_id, {_TZ} AS tz, {_local(_NOW)} AS today,
                   greatest({_local("m.entered_at")}, {_local("CAST(:start AS timestamptz)")})
                       AS anchor
            FROM {_MEMBER} m LEFT JOIN {_CUSTOMER} c ON c.customer_id = m.customer_id
            WHERE m.segment_id = CAST(:segment_id AS uuid)
        ) x
        WHERE today - anchor >= CAST(:every AS integer)""",
    "revisit_stage": f"""
        SELECT customer_id, tz, anchor + ((today - anchor) / CAST(:every AS integer)) * CAST(:every AS integer) AS occurs_on
        FROM (
            SELECT c.customer_id, {_TZ} AS tz, {_local(_NOW)} AS today,
                   greatest({_local("coalesce(c.lifecycle_since, c.updated_at)")},
                            {_local("CAST(:start AS timestamptz)")}) AS anchor
            FROM {_CUSTOMER} c WHERE c.lifecycle_stage = CAST(:stage AS text)
        ) x
        WHERE today - anchor >= CAST(:every AS integer)""",
}


def _fire_sql(kind: str, *, segment: bool, stage: bool, action: str, assign_to: str) -> str:
    audience = ""
    if segment:
        audience += (
            f" AND EXISTS (SELECT 1 FROM {_MEMBER} m2 WHERE m2.customer_id = cand.customer_id"
            " AND m2.segment_id = CAST(:segment_id AS uuid))"
        )
    if stage:
        audience += (
            f" AND EXISTS (SELECT 1 FROM {_CUSTOMER} c2 WHERE c2.customer_id = cand.customer_id"
            " AND c2.lifecycle_stage = CAST(:stage AS text))"
        )
    today = "(CAST(:now AS timestamptz) AT TIME ZONE cand.tz)::date"
    start = "(CAST(:start AS timestamptz) AT TIME ZONE cand.tz)::date"
    sql = f"""
    WITH cand AS ({_CANDIDATES[kind]}
    ), due AS (
        SELECT DISTINCT cand.customer_id, cand.tz, cand.occurs_on FROM cand
        WHERE cand.occurs_on <= {today}
          AND cand.occurs_on >= greatest({start}, {today} - CAST(:catch_up AS integer))
          AND NOT EXISTS (
              SELECT 1 FROM {_OCCURRENCE} o WHERE o.rule_id = CAST(:rule_id AS uuid)
              AND o.customer_id = cand.customer_id AND o.occurs_on = cand.occurs_on
          ){audience}
        LIMIT :limit
    ), new AS (
        INSERT INTO {_OCCURRENCE} (rule_id, customer_id, occurs_on, due_at, created_at)
        SELECT CAST(:rule_id AS uuid), customer_id, occurs_on,
               (occurs_on + CAST(:due_time AS time)) AT TIME ZONE tz, {_NOW}
        FROM due
        ON CONFLICT DO NOTHING
        RETURNING customer_id, occurs_on, due_at
    )"""
    if action == "event":
        return sql + " SELECT customer_id, occurs_on, due_at, NULL::uuid, NULL::text FROM new"
    assignee = (
        "CAST(:assignee AS text)"
        if assign_to == "fixed"
        else "coalesce(s.owner_id, CAST(:assignee AS text))"
    )
    return (
        sql
        + f"""
    INSERT INTO {_TASK} (id, customer_id, assignee_id, title, due_at, status, source, rule_id,
                         rule_type, occurs_on, created_by, created_at, version, updated_at)
    SELECT gen_random_uuid(), new.customer_id, {assignee}, CAST(:title AS text), new.due_at,
           'open', 'care_plan', CAST(:rule_id AS uuid), CAST(:rule_type AS text),
           new.occurs_on, 'care-plan', {_NOW}, 1, {_NOW}
    FROM new LEFT JOIN {_SCOPE} s ON s.customer_id = new.customer_id
    RETURNING customer_id, occurs_on, due_at, id, assignee_id"""
    )


@dataclass
class Fired:
    customer_id: UUID
    occurs_on: date
    due_at: datetime
    task_id: UUID | None
    assignee_id: str | None


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rule: CarePlanRule) -> CarePlanRule:
        self.session.add(rule)
        await self.session.flush()
        await self.session.refresh(rule)
        return rule

    async def get(self, rule_id: UUID, *, lock: bool = False) -> CarePlanRule | None:
        statement = select(CarePlanRule).where(CarePlanRule.id == rule_id)
        if lock:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).first()

    async def flush(self, rule: CarePlanRule) -> CarePlanRule:
        await self.session.flush()
        await self.session.refresh(rule)
        return rule

    async def delete(self, rule: CarePlanRule) -> None:
        await self.session.delete(rule)
        await self.session.flush()

    async def find(
        self, params: CursorParams, *, type_: str | None, active: bool | None
    ) -> tuple[list[CarePlanRule], str | None]:
        statement = select(CarePlanRule)
        if type_ is not None:
            statement = statement.where(CarePlanRule.type == type_)
        if active is not None:
            statement = statement.where(CarePlanRule.active.is_(active))
        return await paginate(
            self.session,
            statement,
            keys=[CarePlanRule.created_at, CarePlanRule.id],
            key_of=lambda r: (r.created_at, r.id),
            params=params,
        )

    async def active_ids(self) -> list[UUID]:
        statement = select(CarePlanRule.id).where(CarePlanRule.active).order_by(CarePlanRule.id)
        return list((await self.session.scalars(statement)).all())

    async def claim(self, rule_id: UUID) -> CarePlanRule | None:
        """The active rule, locked for this transaction; ``None`` if another replica holds
        it (``SKIP LOCKED``: that replica is firing it) or it is gone or inactive."""
        statement = (
            select(CarePlanRule)
            .where(CarePlanRule.id == rule_id, CarePlanRule.active)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(statement)).first()

    async def fire(
        self, rule: CarePlanRule, now: datetime, *, catch_up_days: int, limit: int
    ) -> list[Fired]:
        """Record up to ``limit`` occasions of ``rule`` that have come (in each customer's
        local calendar) and are not recorded yet; for task rules, create their tasks in the
        same statement. Returns what was recorded.

        The occasion's primary key (rule, customer, date) with ``ON CONFLICT DO NOTHING``
        is what makes it once-only, whatever else runs at the same time."""
        params: dict[str, Any] = {
            "rule_id": rule.id,
            "now": now,
            "start": rule.created_at,
            "catch_up": catch_up_days,
            "limit": limit,
            "due_time": rule.due_time,
            "segment_id": rule.segment_id,
            "stage": rule.lifecycle_stage,
        }
        kind = rule.type
        segment, stage = rule.segment_id is not None, rule.lifecycle_stage is not None
        if kind == "birthday":
            pairs = birthday_candidates(now, catch_up_days)
            params |= {"days": [d for d, _ in pairs], "mmdds": [m for _, m in pairs]}
        elif kind == "holiday":
            params["days"] = holiday_candidates(rule.dates or [], now, catch_up_days)
            if not params["days"]:
                return []
        elif kind in ("post_purchase", "low_csat"):
            days_after = rule.days_after or 0
            params |= {
                "days_after": days_after,
                "lookback": days_after + catch_up_days + 2,
                "threshold": rule.csat_threshold,
            }
        elif kind == "periodic_revisit":
            params["every"] = rule.every_days
            if segment:
                kind, segment = "revisit_segment", False  # the driver is the filter
            else:
                kind, stage = "revisit_stage", False
        if rule.action == "task":
            params |= {
                "assignee": rule.assignee_id,
                "title": rule.task_title or DEFAULT_TITLES[rule.type],
                "rule_type": rule.type,
            }
        sql = _fire_sql(
            kind, segment=segment, stage=stage, action=rule.action, assign_to=rule.assign_to
        )
        result = await self.session.execute(text(sql), params)
        return [Fired(*row) for row in result.all()]


class ProjectionRepository:
    """The customer, segment and order facts the rules need, as learned from events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known_timezone(self, name: str | None) -> str | None:
        """``name`` if PostgreSQL knows it (the scheduler computes local dates there),
        else ``None`` (UTC): one unknown name must not stop a rule for everyone."""
        if not name:
            return None
        try:
            async with self.session.begin_nested():
                await self.session.execute(text("SELECT now() AT TIME ZONE :tz"), {"tz": name})
        except DBAPIError:
            return None
        return name

    async def upsert_customer(self, customer_id: UUID, values: dict[str, Any]) -> None:
        if "birthday" in values:
            birthday = values["birthday"]
            values["birthday_mmdd"] = mmdd(birthday) if birthday is not None else None
        statement = insert(CarePlanCustomer).values(customer_id=customer_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[CarePlanCustomer.customer_id],
                set_={**values, "updated_at": statement.excluded.updated_at},
            )
        )

    async def enter_segment(self, segment_id: UUID, customer_id: UUID, at: datetime) -> None:
        await self.session.execute(
            insert(CarePlanSegmentMember)
            .values(segment_id=segment_id, customer_id=customer_id, entered_at=at)
            .on_conflict_do_nothing()
        )

    async def exit_segment(self, segment_id: UUID, customer_id: UUID) -> None:
        await self.session.execute(
            delete(CarePlanSegmentMember).where(
                CarePlanSegmentMember.segment_id == segment_id,
                CarePlanSegmentMember.customer_id == customer_id,
            )
        )

    async def add_order(
        self,
        order_id: UUID,
        customer_id: UUID,
        placed_at: datetime,
        total: Decimal | None = None,
        currency: str | None = None,
    ) -> None:
        await self.session.execute(
            insert(CarePlanOrder)
            .values(
                order_id=order_id,
                customer_id=customer_id,
                placed_at=placed_at,
                total=total,
                currency=currency,
            )
            .on_conflict_do_nothing()
        )

    async def merge(self, merged_id: UUID, survivor_id: UUID) -> None:
        """The duplicate's orders and fired occasions are the survivor's (so an occasion
        already handled for the duplicate does not fire again); its profile facts and
        memberships go (customer360 and segmentation send the survivor's own)."""
        await self.session.execute(
            update(CarePlanOrder)
            .where(CarePlanOrder.customer_id == merged_id)
            .values(customer_id=survivor_id)
        )
        o, mine = CarePlanOccurrence, CarePlanOccurrence.__table__.alias("mine")
        await self.session.execute(
            update(o)
            .where(
                o.customer_id == merged_id,
                ~exists().where(
                    mine.c.rule_id == o.rule_id,
                    mine.c.customer_id == survivor_id,
                    mine.c.occurs_on == o.occurs_on,
                ),
            )
            .values(customer_id=survivor_id)
        )
        await self.forget(merged_id)

        await self.session.execute(
            delete(CarePlanOccurrence).where(CarePlanOccurrence.customer_id == merged_id)
        )

    async def forget(self, customer_id: UUID) -> None:
        """Drop what is known of the customer. Fired occasions stay (ids and dates only): an
        erased customer's survey answers remain, and must not fire a check-in again."""
        for model in (CarePlanCustomer, CarePlanSegmentMember, CarePlanOrder):
            await self.session.execute(delete(model).where(model.customer_id == customer_id))
