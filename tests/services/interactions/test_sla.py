from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.interactions.survey.nps import nps_score
from services.interactions.ticket.sla import BusinessHours, due_at

WEEKDAYS = BusinessHours(frozenset({1, 2, 3, 4, 5}), 9, 17)


class TestDueAt:
    def test_counts_wall_clock_minutes_without_business_hours(self) -> None:
        # Friday 2026-11-27 17:30 UTC
        assert due_at(datetime(2026, 11, 27, 17, 30, tzinfo=UTC), 60) == datetime(
            2026, 11, 27, 18, 30, tzinfo=UTC
        )

    def test_a_ticket_opened_after_hours_on_friday_is_due_on_monday(self) -> None:
        # Friday 17:30, after closing: the hour starts Monday 09:00.
        assert due_at(datetime(2026, 11, 27, 17, 30, tzinfo=UTC), 60, WEEKDAYS) == datetime(
            2026, 11, 30, 10, 0, tzinfo=UTC
        )

    def test_minutes_left_on_friday_carry_over_to_monday(self) -> None:
        # Friday 16:30 + 60 business minutes = 30 on Friday + 30 on Monday.
        assert due_at(datetime(2026, 11, 27, 16, 30, tzinfo=UTC), 60, WEEKDAYS) == datetime(
            2026, 11, 30, 9, 30, tzinfo=UTC
        )

    def test_a_ticket_opened_before_opening_starts_at_opening(self) -> None:
        assert due_at(datetime(2026, 11, 24, 6, 0, tzinfo=UTC), 30, WEEKDAYS) == datetime(
            2026, 11, 24, 9, 30, tzinfo=UTC
        )

    def test_a_target_spanning_days_skips_nights_and_weekends(self) -> None:
        # Thursday 12:00 + 3 business days (24 h): Thu 5 h, Fri 8 h, Mon 8 h, Tue 3 h.
        assert due_at(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), 24 * 60, WEEKDAYS) == datetime(
            2026, 12, 1, 12, 0, tzinfo=UTC
        )

    def test_business_hours_are_read_in_the_policy_timezone(self) -> None:
        berlin = BusinessHours(frozenset({1, 2, 3, 4, 5}), 9, 17, "Europe/Berlin")
        # Monday 07:00 UTC = 08:00 in Berlin (winter): work starts 09:00 Berlin = 08:00 UTC.
        due = due_at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC), 60, berlin)
        assert due == datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        assert due.tzinfo == UTC

    def test_refuses_a_naive_start(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            due_at(datetime(2026, 11, 27, 17, 30), 60)


class TestNpsScore:
    def test_is_percent_promoters_minus_percent_detractors(self) -> None:
        # Scores 10, 9, 9, 8, 7, 6, 3, 0, 10, 5: 4 promoters, 2 passives, 4 detractors → 0.
        assert nps_score(promoters=4, passives=2, detractors=4) == 0.0
        # 5 promoters, 3 passives, 2 detractors of 10 → 50 % - 20 % = 30.
        assert nps_score(promoters=5, passives=3, detractors=2) == 30.0
        # 1 promoter, 0 passives, 2 detractors → 33.3 % - 66.7 % = -33.3.
        assert nps_score(promoters=1, passives=0, detractors=2) == -33.3

    def test_ranges_from_minus_100_to_100(self) -> None:
        assert nps_score(promoters=3, passives=0, detractors=0) == 100.0
        assert nps_score(promoters=0, passives=0, detractors=3) == -100.0

    def test_is_none_without_answers(self) -> None:
        assert nps_score(0, 0, 0) is None


class TestLongTargets:
    def test_a_year_long_target_in_a_one_hour_weekly_window_is_computed(self) -> None:
        mondays = BusinessHours(frozenset({1}), 9, 10)
        # 3 one-hour windows: the third Monday from Monday 2026-11-23 08:00.
        assert due_at(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), 180, mondays) == datetime(
            2026, 12, 7, 10, 0, tzinfo=UTC
        )
        assert due_at(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), 525_600, mondays).year == 2194
