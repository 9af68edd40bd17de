"""Order arithmetic, by example and property-based: exact, rounded once, always adding up."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orders.money import fits_currency, minor_units, round_money
from services.orders.order.pricing import price_line, refund_status, total_order


def test_a_worked_example():
    # 3 x 19.99 = 59.97; minus 5.00 = 54.97; 19 % tax = 10.4443 -> 10.44; total 65.41
    line = price_line(3, Decimal("19.99"), Decimal("5.00"), Decimal("0.19"), "EUR")
    assert (line.subtotal, line.discount, line.tax, line.total) == (
        Decimal("59.97"),
        Decimal("5.00"),
        Decimal("10.44"),
        Decimal("65.41"),
    )


def test_tax_rounds_half_to_even_in_the_currencys_minor_unit():
    assert price_line(1, Decimal("0.50"), Decimal(0), Decimal("0.05"), "EUR").tax == Decimal("0.02")
    assert price_line(1, Decimal("0.70"), Decimal(0), Decimal("0.05"), "EUR").tax == Decimal("0.04")
    assert price_line(1, Decimal("150"), Decimal(0), Decimal("0.1"), "JPY").tax == Decimal("15")
    assert price_line(1, Decimal("155"), Decimal(0), Decimal("0.1"), "JPY").tax == Decimal("16")
    assert minor_units("KWD") == 3
    assert round_money(Decimal("1.0005"), "KWD") == Decimal("1.000")


def test_discounts_and_quantities_out_of_range_are_refused():
    with pytest.raises(ValueError, match="discount"):
        price_line(1, Decimal("10"), Decimal("10.01"), Decimal(0), "EUR")
    with pytest.raises(ValueError, match="quantity"):
        price_line(0, Decimal("10"), Decimal(0), Decimal(0), "EUR")


def test_refund_status():
    assert refund_status(Decimal("10.00"), Decimal("10.00")) == "refunded"
    assert refund_status(Decimal("10.00"), Decimal("0.01")) == "partially_refunded"


CURRENCIES = st.sampled_from(["EUR", "JPY", "KWD", "USD"])


@st.composite
def lines(draw):
    currency = draw(CURRENCIES)
    places = minor_units(currency)
    amount = st.decimals(
        min_value=0, max_value=10**6, places=places, allow_nan=False, allow_infinity=False
    )
    items = []
    for _ in range(draw(st.integers(1, 8))):
        quantity = draw(st.integers(1, 1000))
        unit_price = draw(amount)
        discount = draw(st.decimals(min_value=0, max_value=unit_price * quantity, places=places))
        rate = draw(st.decimals(min_value=0, max_value=1, places=4))
        items.append((quantity, unit_price, discount, rate))
    return currency, items


@given(lines())
def test_order_totals_are_exact_and_add_up(case):
    currency, items = case
    priced = [price_line(q, p, d, r, currency) for q, p, d, r in items]
    totals = total_order(priced)
    assert totals.total == totals.subtotal - totals.discount_total + totals.tax_total
    for (quantity, unit_price, discount, rate), line in zip(items, priced, strict=True):
        assert line.subtotal == unit_price * quantity  # exact: no rounding on prices
        assert fits_currency(line.tax, currency)
        assert (
            abs(line.tax - (line.subtotal - discount) * rate)
            <= Decimal(1).scaleb(-minor_units(currency)) / 2
        )
        assert line.total >= 0
    assert all(fits_currency(v, currency) for v in vars_of(totals))


def vars_of(totals):
    return (totals.subtotal, totals.discount_total, totals.tax_total, totals.total)


@given(
    paid=st.decimals(min_value="0.01", max_value=10**6, places=2),
    asks=st.lists(st.decimals(min_value="0.01", max_value=10**6, places=2), max_size=10),
)
def test_partial_refunds_never_exceed_what_was_paid(paid, asks):
    refunded = Decimal(0)
    for ask in [*asks, paid]:  # finally, whatever is left
        amount = min(ask, paid - refunded)  # what the service allows
        if amount <= 0:
            break
        refunded += amount
        assert refunded <= paid
        assert refund_status(paid, refunded) == (
            "refunded" if refunded == paid else "partially_refunded"
        )
    assert refunded == paid
