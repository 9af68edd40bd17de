"""Discount and points arithmetic, pure and exact, against hand-computed values."""

from decimal import Decimal
from uuid import uuid4

from services.orders.loyalty.service import DEFAULT_SETTINGS, EarnRule, points_for, tier_for
from services.orders.promotion.discounts import allocate, percentage_off


class TestArithmetic:
    def test_percentage_rounds_each_line_half_to_even(self):
        nets = [Decimal("30.00"), Decimal("0.10"), Decimal("25.00")]
        # 4.50; 0.015 -> 0.02 (half to even); ineligible line untouched
        assert percentage_off(nets, [True, True, False], Decimal(15), "EUR") == [
            Decimal("4.50"),
            Decimal("0.02"),
            Decimal(0),
        ]

    def test_a_fixed_amount_is_spread_in_proportion_and_adds_up_exactly(self):
        # 10.00 over 30.00 and 25.00: 5.4545… and 4.5454… -> 5.45 and 4.55 (largest remainder)
        shares = allocate(
            Decimal("10.00"), [Decimal("30.00"), Decimal("25.00")], [True, True], "EUR"
        )
        assert shares == [Decimal("5.45"), Decimal("4.55")]
        # three equal lines: the leftover cent goes to the first
        thirds = allocate(Decimal("1.00"), [Decimal("1.00")] * 3, [True] * 3, "EUR")
        assert thirds == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
        # capped at what the eligible lines cost
        assert allocate(
            Decimal("50"), [Decimal("7.00"), Decimal("9.00")], [True, False], "EUR"
        ) == [
            Decimal("7.00"),
            Decimal(0),
        ]
        # JPY has no minor unit
        assert allocate(Decimal("100"), [Decimal("250"), Decimal("50")], [True, True], "JPY") == [
            Decimal("83"),
            Decimal("17"),
        ]


class TestPoints:
    def test_points_are_rounded_down_once_over_the_order(self):
        rule = EarnRule("EUR", Decimal("1.5"), Decimal("0.01"))
        # 33.33 * 1.5 = 49.995 and 0.01 * 1.5 = 0.015: 50.01 -> 50 (per line it would be 49)
        assert (
            points_for([(Decimal("33.33"), Decimal(1)), (Decimal("0.01"), Decimal(1))], rule) == 50
        )

    def test_a_product_multiplier_beats_its_category(self):
        tea = uuid4()
        rule = EarnRule(
            "EUR",
            Decimal(1),
            Decimal("0.01"),
            product_multipliers={str(tea): Decimal(3)},
            category_multipliers={"tea": Decimal(2)},
        )
        assert rule.multiplier(tea, "tea") == 3
        assert rule.multiplier(uuid4(), "tea") == 2
        assert rule.multiplier(uuid4(), None) == 1

    def test_tiers_by_threshold(self):
        assert [tier_for(p, DEFAULT_SETTINGS) for p in (0, 499, 500, 1999, 2000, 5000)] == [
            None,
            None,
            "silver",
            "silver",
            "gold",
            "platinum",
        ]
