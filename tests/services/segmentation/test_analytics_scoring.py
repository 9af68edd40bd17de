"""The analytics definitions, checked against numbers worked out by hand (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.segmentation.analytics.scoring import (
    RFM_GRID,
    RFM_GROUPS,
    Boundaries,
    OrderFacts,
    ScoringPolicy,
    cut_points,
    primary_currency,
    quintile,
    rfm_group,
    score_customer,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = ScoringPolicy()  # at risk > 90 d, churned > 365 d, loyal >= 4, I1 = 90 d, K = 3, 3 y


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def paid(days: int, amount: str, currency: str = "EUR", **kw: str) -> OrderFacts:
    return OrderFacts(
        status=kw.get("status", "paid"),
        currency=currency,
        placed_at=ago(days),
        paid_total=Decimal(amount),
        refunded_total=Decimal(kw.get("refunded", "0")),
    )


class TestQuintiles:
    def test_cut_points_are_the_values_at_ceil_k_n_over_5(self) -> None:
        # N = 10, values 1..10: positions ceil(2), ceil(4), ceil(6), ceil(8) → 2, 4, 6, 8
        assert cut_points(range(10, 0, -1)) == (2, 4, 6, 8)
        # N = 7: positions ceil(1.4)=2, ceil(2.8)=3, ceil(4.2)=5, ceil(5.6)=6
        assert cut_points([10, 20, 30, 40, 50, 60, 70]) == (20, 30, 50, 60)
        # N = 5, 0.6 x 5 must be exactly 3 (no float): positions 1, 2, 3, 4
        assert cut_points([5, 1, 4, 2, 3]) == (1, 2, 3, 4)
        assert cut_points([]) is None

    def test_ten_distinct_values_fill_each_quintile_with_two(self) -> None:
        cuts = cut_points(range(1, 11))
        assert [quintile(v, cuts) for v in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]

    def test_ties_share_a_score_and_the_lowest_value_scores_one(self) -> None:
        # sorted [1, 1, 1, 1, 2, 9]: N = 6, positions ceil(1.2)=2, ceil(2.4)=3, ceil(3.6)=4,
        # ceil(4.8)=5 → cuts (1, 1, 1, 2). 1 exceeds none → 1; 2 exceeds three → 4;
        # 9 exceeds all → 5. Same as 1 + floor(5 * below / N): 2 has 4 below → 1 + 3 = 4.
        values = [1, 9, 1, 2, 1, 1]
        cuts = cut_points(values)
        assert cuts == (1, 1, 1, 2)
        assert [quintile(v, cuts) for v in sorted(values)] == [1, 1, 1, 1, 4, 5]

    def test_no_boundaries_means_no_score(self) -> None:
        assert quintile(3, None) is None


class TestRfmGroups:
    def test_the_grid_names_all_eleven_groups(self) -> None:
        assert {g for row in RFM_GRID for g in row} == set(RFM_GROUPS)
        assert len(RFM_GROUPS) == 11

    def test_corners_and_landmarks_of_the_grid(self) -> None:
        assert rfm_group(5, 5) == "champions"
        assert rfm_group(5, 4) == "champions"
        assert rfm_group(5, 1) == "new"
        assert rfm_group(4, 1) == "promising"
        assert rfm_group(4, 2) == "potential_loyalist"
        assert rfm_group(3, 3) == "need_attention"
        assert rfm_group(3, 5) == "loyal"
        assert rfm_group(3, 1) == "about_to_sleep"
        assert rfm_group(2, 3) == "at_risk"
        assert rfm_group(1, 5) == "cant_lose_them"
        assert rfm_group(2, 2) == "hibernating"
        assert rfm_group(1, 1) == "lost"
        assert rfm_group(None, 3) is None


class TestPrimaryCurrency:
    def test_is_the_currency_of_most_orders_then_the_latest(self) -> None:
        assert primary_currency([paid(15, "60"), paid(12, "20", "USD"), paid(8, "30", "USD")]) == (
            "USD"
        )
        # one each: the latest order's currency
        assert primary_currency([paid(15, "60"), paid(12, "20", "USD")]) == "USD"
        # cancelled orders do not count: EUR has 2 counting orders, USD 1 (3 with cancelled)
        orders = [
            paid(15, "60"),
            paid(10, "60"),
            paid(12, "0", "USD", status="cancelled"),
            paid(8, "0", "USD", status="cancelled"),
            paid(3, "5", "USD"),
        ]
        assert primary_currency(orders) == "EUR"


class TestScoreCustomer:
    # The population of tests/services/segmentation/test_analytics.py, as boundaries:
    #   R: last-order dates C d400, D d240, B d50, A d10, E d5 → cuts (d400, d240, d50, d10)
    #   F: [1, 1, 2, 4, 4] → cuts (1, 1, 2, 4)
    #   M (EUR): [40, 80, 100, 275, 500] → cuts (40, 80, 100, 275)
    BOUNDARIES = Boundaries(
        recency=tuple(ago(d).date() for d in (400, 240, 50, 10)),
        frequency=(1, 1, 2, 4),
        monetary={"EUR": tuple(Decimal(v) for v in ("40", "80", "100", "275"))},
    )

    def test_a_loyal_customer(self) -> None:
        # A: four orders 60 days apart (d190, d130, d70, d10), 75 each, the second refunded
        # 25 → net 75 + 50 + 75 + 75 = 275.
        orders = [
            paid(190, "75"),
            paid(130, "75", status="partially_refunded", refunded="25"),
            paid(70, "75"),
            paid(10, "75"),
        ]
        s = score_customer(orders, self.BOUNDARIES, NOW, POLICY)
        # R: d10 > d400, d240, d50, not > d10 → 1 + 3 = 4; F: 4 > 1, 1, 2, not 4 → 4;
        # M: 275 > 40, 80, 100, not 275 → 4. (R4, F4) → loyal.
        assert (s.recency, s.frequency, s.monetary) == (4, 4, 4)
        assert s.rfm_segment == "loyal"
        # 10 days since the last order (≤ 90), 4 orders (≥ 4) → loyal
        assert s.lifecycle_stage == "loyal"
        # I = (190 - 10) / 3 = 60 d; x = 10 / 60 = 0.17 ≤ 1 → risk 0
        assert s.churn_risk == Decimal("0.00")
        # AOV = 275 / 4 = 68.75; per year = 365 / 60; future = 68.75 * 365 / 60 * 3 * 1
        #     = 75281.25 / 60 = 1254.6875; predicted = 275 + 1254.6875 = 1529.6875 → 1529.69
        assert s.predicted_clv == Decimal("1529.69")
        assert s.historical_clv == {"EUR": Decimal("275")}
        assert s.clv_currency == "EUR"
        assert s.order_count == 4
        assert s.first_order_at == ago(190)
        assert s.last_order_at == ago(10)

    def test_a_customer_overdue_against_their_own_rhythm(self) -> None:
        # B: d80 and d50, 50 + 30 = 80. I = 30 d; 50 days since → x = 5/3
        # risk = (5/3 - 1) / (3 - 1) = 1/3 = 0.333… → 0.33
        s = score_customer([paid(80, "50"), paid(50, "30")], self.BOUNDARIES, NOW, POLICY)
        assert s.churn_risk == Decimal("0.33")
        # R: d50 > d400, d240 only → 3; F: 2 > 1, 1 → 3; M: 80 > 40 → 2 → need_attention
        assert (s.recency, s.frequency, s.monetary) == (3, 3, 2)
        assert s.rfm_segment == "need_attention"
        assert s.lifecycle_stage == "repeat"
        # AOV 40; future = 40 * 365 / 30 * 3 * (1 - 0.33) = 43800 * 0.67 / 30 = 978.20
        # predicted = 80 + 978.20 = 1058.20
        assert s.predicted_clv == Decimal("1058.20")

    def test_a_lost_customer_is_worth_what_they_paid(self) -> None:
        # C: one order d400 of 500. I = 90 d (single order); x = 400 / 90 = 4.44
        # risk = (4.44 - 1) / 2 = 1.72 → clamped to 1; future = 0 → predicted 500.00
        s = score_customer([paid(400, "500")], self.BOUNDARIES, NOW, POLICY)
        assert (s.recency, s.frequency, s.monetary) == (1, 1, 5)
        assert s.rfm_segment == "lost"
        assert s.lifecycle_stage == "churned"  # 400 > 365
        assert s.churn_risk == Decimal("1.00")
        assert s.predicted_clv == Decimal("500.00")

    def test_a_new_customer_with_a_cancelled_order(self) -> None:
        # E: d5 paid 40, and d3 cancelled (never paid): 1 counting order, net 40 + 0.
        orders = [paid(5, "40"), paid(3, "0", status="cancelled")]
        s = score_customer(orders, self.BOUNDARIES, NOW, POLICY)
        # R: d5 > all four cuts → 5; F: 1 → 1; M: 40 exceeds none → 1 → new
        assert (s.recency, s.frequency, s.monetary) == (5, 1, 1)
        assert s.rfm_segment == "new"
        assert s.lifecycle_stage == "first_time"
        assert s.last_order_at == ago(5)  # the cancelled order does not move recency
        # I = 90; x = 5/90 → risk 0; future = 40 * 365 / 90 * 3 = 43800 / 90 = 486.666…
        # predicted = 40 + 486.67 = 526.67
        assert s.churn_risk == Decimal("0.00")
        assert s.predicted_clv == Decimal("526.67")

    def test_lifecycle_thresholds(self) -> None:
        one = [paid(0, "10")]
        assert score_customer(one, Boundaries(), NOW, POLICY).lifecycle_stage == "first_time"
        # 91 days since the last order > 90 → at_risk, whatever the count
        many = [paid(d, "10") for d in (300, 200, 150, 91)]
        assert score_customer(many, Boundaries(), NOW, POLICY).lifecycle_stage == "at_risk"
        # exactly 90 days is not yet at risk
        assert (
            score_customer([paid(100, "1"), paid(90, "1")], Boundaries(), NOW, POLICY)
        ).lifecycle_stage == "repeat"
        assert score_customer([], Boundaries(), NOW, POLICY).lifecycle_stage == "prospect"
        refunded = [paid(3, "10", status="refunded", refunded="10")]
        prospect = score_customer(refunded, Boundaries(), NOW, POLICY)
        assert prospect.lifecycle_stage == "prospect"
        assert prospect.historical_clv == {"EUR": Decimal("0")}
        assert prospect.rfm_segment is None

    def test_money_in_other_currencies_is_kept_apart(self) -> None:
        # EUR d15 60; USD d12 20 and d8 30 → primary USD (2 orders)
        orders = [paid(15, "60"), paid(12, "20", "USD"), paid(8, "30", "USD")]
        s = score_customer(
            orders,
            Boundaries(monetary={"USD": (Decimal(10), Decimal(20), Decimal(40), Decimal(60))}),
            NOW,
            POLICY,
        )
        assert s.historical_clv == {"EUR": Decimal("60"), "USD": Decimal("50")}
        assert s.clv_currency == "USD"
        # M: 50 USD > 10, 20, 40 → 4 (the 60 EUR is not added)
        assert s.monetary == 4
        # no R/F boundaries yet → no R, F, no group
        assert (s.recency, s.frequency, s.rfm_segment) == (None, None, None)
        # I = (15 - 8) / 2 = 3.5 d; x = 8 / 3.5 = 2.2857; risk = 1.2857 / 2 = 0.64285 → 0.64
        assert s.churn_risk == Decimal("0.64")
        # AOV (USD) = 50 / 2 = 25; future = 25 * 365 / 3.5 * 3 * 0.36 = 9855 / 3.5 = 2815.71…
        # predicted = 50 + 2815.714… = 2865.71
        assert s.predicted_clv == Decimal("2865.71")

    def test_orders_on_one_instant_have_an_interval_of_one_day(self) -> None:
        # I = max(0 / 1, 1) = 1 d; 2 days since → x = 2 → risk (2 - 1) / 2 = 0.50
        s = score_customer([paid(2, "10"), paid(2, "10")], Boundaries(), NOW, POLICY)
        assert s.churn_risk == Decimal("0.50")


def test_recency_compares_utc_dates() -> None:
    late = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    s = score_customer(
        [OrderFacts("paid", "EUR", late, Decimal(1), Decimal(0))],
        Boundaries(recency=(date(2026, 10, 31),) * 4),
        NOW,
        POLICY,
    )
    assert s.recency == 1  # the same day as every cut: exceeds none
