"""The care-plan scheduler: fires rules on their occasions and announces due tasks.

Each pass, at ``now()``:

1. **Fire rules.** For every active rule, occasions that have come in each customer's local
   calendar (the customer's timezone from customer360, UTC when unknown) are recorded in
   ``care_plan_occurrence`` — keyed (rule, customer, date), inserted with ``ON CONFLICT DO
   NOTHING`` — and, in the same statement, the rule's tasks are created (task rules) or
   ``CarePlanTriggered`` is queued (event rules). An occasion fires on its local date, from
   local midnight; its task falls due at the rule's ``due_time`` that day. Occasions older
   than ``catch_up_days`` (downtime) or before the rule was created are skipped, not
   replayed. A replica claims a rule with ``FOR UPDATE SKIP LOCKED`` per batch, so replicas
   share rules instead of queueing behind each other; the key is what guarantees once-only.
2. **Announce due tasks.** Open tasks (care-plan or manual) whose ``due_at`` has passed are
   marked and ``TaskDue`` queued in one transaction, as the SLA breach scan does: once each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI

from services.interactions.campaign import handlers as campaign_handlers
from services.interactions.careplan.repository import RuleRepository
from services.interactions.scheduling import Clock, PeriodicJob, running_job, utcnow
from services.interactions.task.repository import TaskRepository
from shared.db import Database
from shared.events import CarePlanTriggered, TaskDue
from shared.messaging import publish

__all__ = ["CarePlanScheduler", "PassResult", "care_plan_scheduler_lifespan"]


@dataclass
class PassResult:
    tasks_created: int = 0
    events_triggered: int = 0
    tasks_due: int = 0

    @property
    def total(self) -> int:
        return self.tasks_created + self.events_triggered + self.tasks_due


class CarePlanScheduler(PeriodicJob):
    name = "care-plan-scheduler"

    def __init__(
        self,
        database: Database,
        *,
        now: Clock = utcnow,
        interval_s: float = 60.0,
        batch_size: int = 500,
        catch_up_days: int = 7,
    ) -> None:
        super().__init__(database, now=now, interval_s=interval_s)
        self.batch_size = batch_size
        self.catch_up_days = catch_up_days

    async def run_once(self) -> int:
        return (await self.run_pass()).total

    async def run_pass(self) -> PassResult:
        result = PassResult()
        now = self.now()
        await self.fire_rules(now, result)
        result.tasks_due = await self.announce_due(now)
        return result

    async def fire_rules(self, now: datetime, result: PassResult) -> None:
        async with self.database.session() as session:
            rule_ids = await RuleRepository(session).active_ids()
        for rule_id in rule_ids:
            while True:
                async with self.database.session() as session:
                    repo = RuleRepository(session)
                    rule = await repo.claim(rule_id)
                    if rule is None:
                        break  # another replica is on it (or it went inactive)
                    fired = await repo.fire(
                        rule, now, catch_up_days=self.catch_up_days, limit=self.batch_size
                    )
                    if rule.action == "event":
                        await publish(
                            session,
                            *(
                                CarePlanTriggered(
                                    customer_id=f.customer_id,
                                    rule_id=rule.id,
                                    rule_type=rule.type,
                                    rule_name=rule.name,
                                    occurs_on=f.occurs_on,
                                    due_at=f.due_at,
                                    triggered_at=now,
                                )
                                for f in fired
                            ),
                        )
                        result.events_triggered += len(fired)
                    else:
                        result.tasks_created += len(fired)
                if len(fired) < self.batch_size:
                    break

    async def announce_due(self, now: datetime) -> int:
        total = 0
        while True:
            async with self.database.session() as session:
                due = await TaskRepository(session).mark_due(now, self.batch_size)
                events = [
                    TaskDue(
                        customer_id=t.customer_id,
                        task_id=t.task_id,
                        title=t.title,
                        assignee=t.assignee_id,
                        due_at=t.due_at,
                        source=t.source,
                        rule_id=t.rule_id,
                        rule_type=t.rule_type,
                        occurs_on=t.occurs_on,
                    )
                    for t in due
                ]
                await publish(session, *events)
                # task_due campaigns, in the same transaction: once per task.
                await campaign_handlers.on_tasks_due(session, events)
            total += len(due)
            if len(due) < self.batch_size:
                return total


@asynccontextmanager
async def care_plan_scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    scheduler = None
    if settings.care_plan_scheduler_enabled:
        scheduler = CarePlanScheduler(
            app.state.database,
            interval_s=settings.care_plan_scheduler_interval_s,
            catch_up_days=settings.care_plan_catch_up_days,
        )
        app.state.care_plan_scheduler = scheduler
    async with running_job(scheduler):
        yield
