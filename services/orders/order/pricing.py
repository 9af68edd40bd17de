"""Order arithmetic (pure, exact): line totals, order totals, and the status machine.

Per line: ``subtotal = quantity * unit_price``; ``net = subtotal - discount``;
``tax = round(net * tax_rate)``; ``total = net + tax``. Rounding is to the currency's minor
unit, half to even, and happens once per line on the tax only — prices and discounts must
already fit the currency (``19.999`` EUR is refused, not rounded). The order's figures are
the sums of its lines, so they always add up: ``total = subtotal - discount_total +
tax_total``, to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.orders.money import round_money

__all__ = [
    "TRANSITIONS",
    "LinePrice",
    "OrderTotals",
    "price_line",
    "refund_status",
    "total_order",
]


@dataclass(frozen=True, slots=True)
class LinePrice:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class OrderTotals:
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal


def price_line(
    quantity: int, unit_price: Decimal, discount: Decimal, tax_rate: Decimal, currency: str
) -> LinePrice:
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    subtotal = unit_price * quantity
    if not Decimal(0) <= discount <= subtotal:
        raise ValueError("discount must be between 0 and the line's subtotal")
    net = subtotal - discount
    tax = round_money(net * tax_rate, currency)
    return LinePrice(subtotal, discount, tax, net + tax)


def total_order(lines: list[LinePrice]) -> OrderTotals:
    zero = Decimal(0)
    return OrderTotals(
        subtotal=sum((line.subtotal for line in lines), zero),
        discount_total=sum((line.discount for line in lines), zero),
        tax_total=sum((line.tax for line in lines), zero),
        total=sum((line.total for line in lines), zero),
    )


#: Status changes asked for by a client (payments and refunds move the status themselves).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"cancelled"}),
    "paid": frozenset({"fulfilled"}),
    "partially_refunded": frozenset({"fulfilled"}),
    "fulfilled": frozenset(),
    "cancelled": frozenset(),
    "refunded": frozenset(),
}


def refund_status(paid_total: Decimal, refunded_total: Decimal) -> str:
    """The status after a refund: everything paid back, or part of it."""
    return "refunded" if refunded_total >= paid_total else "partially_refunded"
