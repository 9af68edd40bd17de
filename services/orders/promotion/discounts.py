"""Discount arithmetic (pure, exact): what a promotion or points take off each line.

Every amount is in the currency's minor unit. A line's *net* is what is left of it after
its own discount and the discounts applied before this one (coupons in the order given,
then points); a discount never takes a line below zero.

* **Percentage** — per eligible line, ``round(net * percent / 100)`` half to even (like tax,
  rounded once per line), so each line's share is exact and the order's sum adds up.
* **Fixed amount** and **points** — ``min(amount, Σ eligible nets)`` is spread over the
  eligible lines in proportion to their nets, in whole minor units; the units left over by
  rounding down go to the largest remainders (ties: the earlier line). The shares add up to
  the amount exactly.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from services.orders.money import quantum, round_money

__all__ = ["allocate", "percentage_off"]


def percentage_off(
    nets: list[Decimal], eligible: list[bool], percent: Decimal, currency: str
) -> list[Decimal]:
    return [
        round_money(net * percent / 100, currency) if ok else Decimal(0)
        for net, ok in zip(nets, eligible, strict=True)
    ]


def allocate(
    amount: Decimal, nets: list[Decimal], eligible: list[bool], currency: str
) -> list[Decimal]:
    """Spread ``amount`` (capped at the eligible nets' sum) over the eligible lines."""
    unit = quantum(currency)
    weights = [int(net / unit) if ok else 0 for net, ok in zip(nets, eligible, strict=True)]
    total_weight = sum(weights)
    if total_weight == 0:
        return [Decimal(0)] * len(nets)
    units = min(int((amount / unit).to_integral_value(ROUND_FLOOR)), total_weight)
    shares = [units * w // total_weight for w in weights]
    remainders = [units * w % total_weight for w in weights]
    left = units - sum(shares)
    for i in sorted(range(len(nets)), key=lambda i: (-remainders[i], i))[:left]:
        shares[i] += 1
    return [Decimal(share) * unit for share in shares]
