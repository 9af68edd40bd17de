"""Which calendar dates a birthday or holiday rule may fire on around ``now``.

The scheduler works per customer in the customer's own calendar, and timezones span UTC-12
to UTC+14, so the candidate dates run from ``catch_up_days + 1`` days before today (UTC) to
one day after; the SQL then keeps, per customer, the ones between the start of the catch-up
window and the customer's local today.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

__all__ = ["birthday_candidates", "candidate_days", "holiday_candidates", "mmdd"]


def mmdd(day: date) -> int:
    return day.month * 100 + day.day


def candidate_days(now: datetime, catch_up_days: int) -> list[date]:
    today = now.date()
    return [today + timedelta(days=n) for n in range(-(catch_up_days + 1), 2)]


def birthday_candidates(now: datetime, catch_up_days: int) -> list[tuple[date, int]]:
    """``(occasion, birthday month*100+day)`` pairs: a 29 February birthday is greeted on
    the 28th in years without one."""
    pairs = []
    for day in candidate_days(now, catch_up_days):
        pairs.append((day, mmdd(day)))
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            pairs.append((day, 229))
    return pairs


def holiday_candidates(dates: list[str], now: datetime, catch_up_days: int) -> list[date]:
    """The rule's dates (``MM-DD`` yearly, ``YYYY-MM-DD`` once) among the candidate days;
    a yearly 02-29 falls on the 28th in years without one."""
    yearly = {d for d in dates if len(d) == 5}
    once = {date.fromisoformat(d) for d in dates if len(d) == 10}
    found = []
    for day in candidate_days(now, catch_up_days):
        key = f"{day.month:02d}-{day.day:02d}"
        leap_stand_in = key == "02-28" and not calendar.isleap(day.year) and "02-29" in yearly
        if key in yearly or leap_stand_in or day in once:
            found.append(day)
    return found
