"""What the periodic jobs of interactions share: a controllable clock on the shared loop.

A job (the SLA breach scan, the care-plan scheduler, the campaign sender) implements
:meth:`PeriodicJob.run_once` at ``self.now()`` (see :mod:`shared.periodic` for the loop and
why ``run_once`` must be safe to run concurrently). Tests drive ``run_once`` with their own
clock instead of the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CTE, Select

from shared.db import Database
from shared.periodic import Periodic
from shared.periodic import running as running_job

__all__ = ["Clock", "PeriodicJob", "claim_batch", "running_job", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class PeriodicJob(Periodic):
    def __init__(
        self, database: Database, *, now: Clock = utcnow, interval_s: float = 30.0
    ) -> None:
        self.database = database
        self.now = now
        self.interval_s = interval_s

    # run_once: one pass at ``now()``, returning how much it did (for the log).

    def report(self, result: Any) -> str | None:
        return f"{result} done" if result else None


def claim_batch(candidates: Select[Any]) -> CTE:
    """``candidates`` (ids, ordered, with a LIMIT) locked with ``SKIP LOCKED`` as a
    ``MATERIALIZED`` CTE, for ``UPDATE … FROM claimed WHERE t.id = claimed.id``.

    Not ``WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL may run that
    subquery again for every row, each run skipping the rows just updated, so the LIMIT does
    not hold — 3,000 due tickets were all marked by a pass asked for 500, and 50,000 due
    tasks queued 50,000 events in one transaction (more advisory locks than the lock table
    holds). A materialised CTE runs once."""
    return candidates.with_for_update(skip_locked=True).cte("claimed").prefix_with("MATERIALIZED")
