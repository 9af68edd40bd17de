"""Outbound delivery rules that need no I/O: which events an endpoint wants, when to try
again, and what a partner's answer means."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase

__all__ = [
    "SVIX_SCHEDULE_S",
    "matches",
    "next_delay",
    "parse_retry_after",
    "valid_pattern",
]

#: Delay before each attempt, like Svix: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SVIX_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def valid_pattern(pattern: str) -> bool:
    """``rapport.order.placed.v1``, ``rapport.order.*`` or ``*``: dot-separated, and ``*``
    only as a whole last segment (or alone)."""
    parts = pattern.split(".")
    if any(not p for p in parts):
        return False
    if "*" in pattern:
        return parts[-1] == "*" and all("*" not in p for p in parts[:-1])
    return True


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``patterns`` wants ``event_type``. A trailing ``*``
    matches any rest (``rapport.order.*`` matches ``rapport.order.placed.v1``)."""
    return any(fnmatchcase(event_type, p) for p in patterns)


def next_delay(
    attempts_made: int,
    schedule: Sequence[float],
    *,
    retry_after_s: float | None = None,
    max_retry_after_s: float = 86_400,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> timedelta | None:
    """How long to wait after ``attempts_made`` failed attempts; ``None``: give up.

    ``schedule[n]`` is the delay before attempt ``n + 1``. Each delay is spread by ±``jitter``
    so that endpoints failing together do not retry together. A ``Retry-After`` the endpoint
    sent is honoured when it asks for longer (capped at ``max_retry_after_s``).
    """
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    spread = (rng or random).uniform(1 - jitter, 1 + jitter) if jitter else 1.0
    delay = base * spread
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_retry_after_s))
    return timedelta(seconds=delay)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; junk → ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
