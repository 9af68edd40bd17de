"""SLA due times: a pure function of the start time, a target and (optional) business hours.

Without business hours a target of N minutes is due N minutes later. With them, only minutes
inside the working window count: a 60-minute target opened Friday 17:30 with Mon-Fri 9-17
is due Monday 10:00 (the Friday evening and the weekend do not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BusinessHours", "due_at"]


@dataclass(frozen=True)
class BusinessHours:
    #: ISO weekdays (1 = Monday … 7 = Sunday).
    days: frozenset[int]
    start_hour: int
    end_hour: int
    timezone: str = "UTC"


def due_at(start: datetime, minutes: int, hours: BusinessHours | None = None) -> datetime:
    """When a target of ``minutes`` started at ``start`` (aware) falls due, in UTC."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if hours is None or not hours.days:
        return (start + timedelta(minutes=minutes)).astimezone(UTC)
    zone = ZoneInfo(hours.timezone)
    current = start.astimezone(zone)
    remaining = timedelta(minutes=minutes)
    # One step per day; a week holds at least one window of (end - start) hours.
    window = (hours.end_hour - hours.start_hour) * 60
    for _ in range((minutes // max(window, 1) + 2) * 7):
        day = current.date()
        opens = datetime.combine(day, time(hours.start_hour), zone)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0), zone)
            if hours.end_hour == 24
            else datetime.combine(day, time(hours.end_hour), zone)
        )
        if day.isoweekday() in hours.days and current < closes:
            begin = max(current, opens)
            available = closes - begin
            if remaining <= available:
                return (begin + remaining).astimezone(UTC)
            remaining -= available
        current = datetime.combine(day + timedelta(days=1), time(0), zone)
    raise ValueError("target too far in the future")
