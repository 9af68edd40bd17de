"""Holt's linear trend forecast, on series worked out by hand, and through the API."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from services.orders.config import Settings
from services.orders.deal.forecast import holt_linear
from services.orders.main import create_app
from tests.support import api_client, bearer

WRITE = bearer("orders:read", "orders:write")
ADMIN = bearer("orders:read", "orders:write", "admin")


class TestHoltLinear:
    def test_a_known_series(self):
        # alpha = beta = 0.5 on 10, 14, 12, 18:
        # level0 = 10, trend0 = 14 - 10 = 4
        # t1: level = .5*14 + .5*(10 + 4)    = 14;    trend = .5*(14 - 10) + .5*4     = 4
        # t2: level = .5*12 + .5*(14 + 4)    = 15;    trend = .5*(15 - 14) + .5*4     = 2.5
        # t3: level = .5*18 + .5*(15 + 2.5)  = 17.75; trend = .5*(17.75 - 15) + .5*2.5 = 2.625
        # forecast: 17.75 + h*2.625 = 20.375, 23.0, 25.625
        fit = holt_linear([D(10), D(14), D(12), D(18)], 3, alpha=D("0.5"), beta=D("0.5"))
        assert (fit.level, fit.trend) == (D("17.75"), D("2.625"))
        assert fit.forecast == [D("20.375"), D("23.000"), D("25.625")]

    def test_the_default_smoothing_on_the_same_series(self):
        # alpha = 0.5, beta = 0.3: level0 = 10, trend0 = 4
        # t1: level = 7 + 7 = 14;          trend = .3*4 + .7*4 = 4
        # t2: level = 6 + .5*18 = 15;      trend = .3*1 + .7*4 = 3.1
        # t3: level = 9 + .5*18.1 = 18.05; trend = .3*3.05 + .7*3.1 = 0.915 + 2.17 = 3.085
        fit = holt_linear([D(10), D(14), D(12), D(18)], 2, alpha=D("0.5"), beta=D("0.3"))
        assert (fit.level, fit.trend) == (D("18.05"), D("3.085"))
        assert fit.forecast == [D("21.135"), D("24.220")]

    def test_a_straight_line_is_continued_exactly(self):
        fit = holt_linear([D(100), D(110), D(120), D(130)], 2, alpha=D("0.3"), beta=D("0.1"))
        assert fit.forecast == [D(140), D(150)]

    def test_short_series_and_falling_revenue(self):
        assert holt_linear([], 2, alpha=D(1), beta=D(1)).forecast == [D(0), D(0)]
        assert holt_linear([D(7)], 2, alpha=D("0.5"), beta=D("0.5")).forecast == [D(7), D(7)]
        # level 5, trend -5: 0 and -5 are reported as 0
        assert holt_linear([D(10), D(5)], 2, alpha=D(1), beta=D(1)).forecast == [D(0), D(0)]
        with pytest.raises(ValueError, match="alpha"):
            holt_linear([D(1)], 1, alpha=D(0), beta=D("0.5"))


SMOOTHING = st.integers(1, 100).map(lambda n: D(n) / 100)


@given(
    start=st.integers(0, 10**6),
    slope=st.integers(-1000, 1000),
    length=st.integers(2, 24),
    horizon=st.integers(1, 12),
    alpha=SMOOTHING,
    beta=SMOOTHING,
)
def test_any_straight_line_is_continued_exactly_whatever_the_smoothing(
    start, slope, length, horizon, alpha, beta
):
    # On a line the one-step forecast is always right, so neither level nor trend ever moves
    # off it: Holt's method must reproduce it exactly (Decimal: no float drift), clamped at 0.
    fit = holt_linear(
        [D(start + slope * i) for i in range(length)], horizon, alpha=alpha, beta=beta
    )
    assert fit.trend == slope
    assert fit.forecast == [
        max(D(start + slope * (length - 1 + h)), D(0)) for h in range(1, horizon + 1)
    ]


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_settings):
    async with api_client(create_app(make_settings(Settings))) as c:
        yield c


@pytest.mark.asyncio(loop_scope="session")
async def test_the_forecast_endpoint_on_a_known_order_history_and_pipeline(client):
    # CHF keeps other tests' orders out. Net revenue per month (paid - refunded):
    # Jan 100, Feb 100 + 40, Mar 150 - 30 = 120, Apr 180; pending orders count nothing.
    # That is 10 x (10, 14, 12, 18): with alpha = beta = 0.5, 203.75, 230.00, 256.25.
    product = await client.post(
        "/products",
        json={"sku": f"F-{uuid.uuid4().hex[:8]}", "name": "F", "price": "10.00", "currency": "CHF"},
        headers=WRITE,
    )
    pid = product.json()["id"]
    customer = str(uuid.uuid4())

    async def order(day: str, quantity: int, *, pay: bool = True, refund: str | None = None):
        placed = await client.post(
            "/orders",
            json={
                "customer_id": customer,
                "currency": "CHF",
                "channel": "online_store",
                "placed_at": f"{day}T12:00:00Z",
                "lines": [{"product_id": pid, "quantity": quantity}],
            },
            headers=WRITE,
        )
        assert placed.status_code == 201, placed.text
        url = f"/orders/{placed.json()['id']}"
        if pay:
            total = placed.json()["total"]
            paid = await client.post(
                f"{url}/payments", json={"amount": total, "method": "card"}, headers=WRITE
            )
            assert paid.status_code == 201
        if refund:
            await client.post(f"{url}/refunds", json={"amount": refund}, headers=WRITE)

    await order("2025-12-31", 99)  # before the window
    await order("2026-01-10", 10)
    await order("2026-02-01", 10)
    await order("2026-02-28", 4)
    await order("2026-03-15", 15, refund="30.00")
    await order("2026-03-16", 7, pay=False)
    await order("2026-04-30", 18)
    await order("2026-05-02", 50)  # the current month: not history

    suffix = uuid.uuid4().hex[:6]
    stages = []
    for position, probability in ((0, "0.25"), (1, "0.6")):
        stage = await client.post(
            "/pipeline/stages",
            json={
                "name": f"S{position}-{suffix}",
                "position": position,
                "probability": probability,
            },
            headers=ADMIN,
        )
        stages.append(stage.json()["id"])
    for amount, stage, close in (
        ("1000.00", stages[0], "2026-06-10"),
        ("500.00", stages[1], "2026-06-30"),
        ("200.00", stages[1], None),
        ("80.00", stages[0], "2026-07-01"),
    ):
        deal = await client.post(
            "/deals",
            json={
                "customer_id": customer,
                "title": "Deal",
                "amount": amount,
                "currency": "CHF",
                "stage_id": stage,
                "expected_close_date": close,
            },
            headers=WRITE,
        )
        assert deal.status_code == 201, deal.text
    lost = await client.post(
        "/deals",
        json={
            "customer_id": customer,
            "title": "Gone",
            "amount": "999.00",
            "currency": "CHF",
            "expected_close_date": "2026-06-01",
        },
        headers=WRITE,
    )
    await client.post(f"/deals/{lost.json()['id']}/lost", json={}, headers=WRITE)

    response = await client.get(
        "/pipeline/forecast?currency=CHF&months=3&history=4&alpha=0.5&beta=0.5&as_of=2026-05-20",
        headers=WRITE,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(m["month"], m["revenue"]) for m in body["history"]] == [
        ("2026-01", "100.00"),
        ("2026-02", "140.00"),
        ("2026-03", "120.00"),
        ("2026-04", "180.00"),
    ]
    assert [(m["month"], m["revenue"]) for m in body["revenue_forecast"]] == [
        ("2026-05", "203.75"),
        ("2026-06", "230.00"),
        ("2026-07", "256.25"),
    ]
    assert [(p["month"], p["deals"], p["amount"], p["weighted"]) for p in body["pipeline"]] == [
        ("2026-06", 2, "1500.00", "550.00"),  # 1000 x 0.25 + 500 x 0.6
        ("2026-07", 1, "80.00", "20.00"),
        (None, 1, "200.00", "120.00"),
    ]
    assert body["method"] == "holt-linear"

    bad = await client.get("/pipeline/forecast?currency=XYZ", headers=WRITE)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
