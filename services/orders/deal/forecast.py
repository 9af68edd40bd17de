"""Revenue forecast: Holt's linear trend method (double exponential smoothing), exact.

For a monthly series ``y_0 … y_{n-1}`` with smoothing factors ``alpha`` (level) and ``beta``
(trend), both in (0, 1]::

    level_0 = y_0                 trend_0 = y_1 - y_0
    level_t = alpha * y_t + (1 - alpha) * (level_{t-1} + trend_{t-1})
    trend_t = beta * (level_t - level_{t-1}) + (1 - beta) * trend_{t-1}
    forecast_{n-1+h} = level_{n-1} + h * trend_{n-1}          (h = 1, 2, …)

Why Holt's: revenue has a level and usually a trend (a growing shop); a moving average or
simple exponential smoothing would lag a trend forever, and seasonal methods (Holt-Winters)
need several years of history that a CRM rarely has. A series of one month gives a flat
forecast; an empty one, zeros. Forecasts below zero are reported as zero (revenue is not
negative). Arithmetic is ``Decimal`` throughout; the caller rounds to the currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["HoltFit", "holt_linear"]


@dataclass(frozen=True, slots=True)
class HoltFit:
    level: Decimal
    trend: Decimal
    forecast: list[Decimal]


def holt_linear(
    series: Sequence[Decimal], horizon: int, *, alpha: Decimal, beta: Decimal
) -> HoltFit:
    if not (0 < alpha <= 1 and 0 < beta <= 1):
        raise ValueError("alpha and beta must be in (0, 1]")
    if horizon < 0:
        raise ValueError("horizon must not be negative")
    if not series:
        return HoltFit(Decimal(0), Decimal(0), [Decimal(0)] * horizon)
    level = series[0]
    trend = series[1] - series[0] if len(series) > 1 else Decimal(0)
    for y in series[1:]:
        previous = level
        level = alpha * y + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
    forecast = [max(level + h * trend, Decimal(0)) for h in range(1, horizon + 1)]
    return HoltFit(level, trend, forecast)
