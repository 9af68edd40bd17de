"""The survey figures, as pure functions (the database does the counting)."""

from __future__ import annotations

__all__ = ["nps_score"]


def nps_score(promoters: int, passives: int, detractors: int) -> float | None:
    """Net Promoter Score: % promoters (9-10) minus % detractors (0-6), -100..100, rounded to
    one decimal; ``None`` without answers."""
    total = promoters + passives + detractors
    if total == 0:
        return None
    return round(100 * (promoters - detractors) / total, 1)
