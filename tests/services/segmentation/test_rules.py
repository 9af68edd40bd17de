"""The rule DSL: validation (every problem, with a JSON pointer), and the SQL compiler checked
against the Python reading of the same rules on real rows."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import insert, select

from services.segmentation.config import Settings
from services.segmentation.main import create_app
from services.segmentation.models import CustomerEvent, CustomerFeatures, Segment, SegmentMember
from services.segmentation.rules import (
    Facts,
    SegmentDef,
    check_references,
    compile_rule,
    evaluate,
    parse,
)
from services.segmentation.rules.parse import MAX_DEPTH, MAX_NODES
from shared.db import driver_connection
from tests.support import api_client

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def problems(raw: Any) -> list[tuple[str, str]]:
    node, errors = parse(raw)
    assert node is None
    return [(e["pointer"], e["code"]) for e in errors]


class TestValidation:
    def test_accepts_every_kind_of_node(self) -> None:
        node, errors = parse(
            {
                "all": [
                    {"field": "order_count", "op": "gte", "value": 3},
                    {"field": "total_spent.EUR", "op": "between", "value": ["10", 99.5]},
                    {"field": "tags", "op": "contains", "value": "vip"},
                    {"field": "last_order_at", "op": "within_last", "days": 90},
                    {"field": "customer_created_at", "op": "before", "value": "2026-01-01"},
                    {"not": {"field": "email_consent", "op": "exists"}},
                    {
                        "any": [
                            {
                                "performed": "order_placed",
                                "where": [{"field": "total", "op": "gt", "value": 50}],
                                "at_least": 2,
                                "within_days": 30,
                            },
                            {"member_of": str(uuid.uuid4())},
                        ]
                    },
                ]
            }
        )
        assert errors == []
        assert node is not None

    def test_points_at_an_unknown_field(self) -> None:
        assert problems({"all": [{"field": "shoe_size", "op": "eq", "value": 42}]}) == [
            ("/rule/all/0/field", "unknown-field")
        ]

    def test_points_at_an_unknown_operator(self) -> None:
        assert problems({"field": "order_count", "op": "like", "value": 1}) == [
            ("/rule/op", "unknown-operator")
        ]

    def test_refuses_a_date_compared_with_a_number(self) -> None:
        assert problems({"field": "last_order_at", "op": "after", "value": 5}) == [
            ("/rule/value", "type-mismatch")
        ]
        assert problems({"field": "last_order_at", "op": "gt", "value": "2026-01-01"}) == [
            ("/rule/op", "type-mismatch")
        ]

    def test_refuses_a_number_compared_with_text(self) -> None:
        assert problems({"any": [{"field": "order_count", "op": "in", "value": [1, "x"]}]}) == [
            ("/rule/any/0/value/1", "type-mismatch")
        ]

    def test_reports_every_problem_at_once(self) -> None:
        assert problems(
            {
                "all": [
                    {"field": "order_count", "op": "gte", "value": True},
                    {"not": {"field": "tags", "op": "gt", "value": 1}},
                    {"field": "orders_30d", "op": "eq", "value": 1, "unit": "days"},
                ]
            }
        ) == [
            ("/rule/all/0/value", "type-mismatch"),
            ("/rule/all/1/not/op", "type-mismatch"),
            ("/rule/all/2/unit", "unknown-key"),
        ]

    def test_refuses_a_map_field_without_a_valid_key(self) -> None:
        assert problems({"field": "total_spent", "op": "gt", "value": 1}) == [
            ("/rule/field", "unknown-field")
        ]
        assert problems({"field": "total_spent.euro", "op": "gt", "value": 1}) == [
            ("/rule/field", "unknown-field")
        ]

    def test_refuses_bad_behaviour_conditions(self) -> None:
        assert problems({"performed": "teleported", "at_least": 1, "within_days": 3}) == [
            ("/rule/performed", "unknown-event")
        ]
        assert problems(
            {
                "performed": "order_placed",
                "where": [{"field": "colour", "op": "eq", "value": "red"}],
                "at_least": 1,
                "within_days": 400,
            }
        ) == [("/rule/where/0/field", "unknown-field"), ("/rule/within_days", "invalid-value")]
        assert problems({"performed": "order_placed", "within_days": 3}) == [
            ("/rule", "missing-value")
        ]

    def test_refuses_empty_groups_and_odd_nodes(self) -> None:
        assert problems({"all": []}) == [("/rule/all", "not-a-list")]
        assert problems({"any": [42]}) == [("/rule/any/0", "not-an-object")]
        assert problems({"whatever": 1}) == [("/rule", "unknown-node")]
        assert problems({"member_of": "vip"}) == [("/rule/member_of", "type-mismatch")]

    def test_refuses_a_rule_nested_too_deep(self) -> None:
        rule: dict[str, Any] = {"field": "order_count", "op": "gt", "value": 0}
        for _ in range(MAX_DEPTH):
            rule = {"not": rule}
        codes = problems(rule)
        assert codes == [("/rule" + "/not" * MAX_DEPTH, "rule-too-deep")]

    def test_refuses_a_rule_with_too_many_nodes(self) -> None:
        leaf = {"field": "order_count", "op": "gt", "value": 0}
        rule = {"any": [{"all": [leaf] * 40} for _ in range(6)]}
        assert ("/rule/any/4/all/34", "rule-too-large") in problems(rule)
        assert len(problems(rule)) == 1
        assert MAX_NODES == 200

    def test_refuses_unknown_segments_and_cycles(self) -> None:
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        b_node, _ = parse({"member_of": str(a)})
        catalog = {
            a: SegmentDef(a, "dynamic", 1, parse({"member_of": str(b)})[0], (b,)),
            b: SegmentDef(b, "dynamic", 1, b_node, (a,)),
        }
        node, _ = parse({"all": [{"member_of": str(b)}, {"member_of": str(c)}]})
        assert node is not None
        errors = check_references(node, catalog, self_id=a)
        assert [(e["pointer"], e["code"]) for e in errors] == [
            ("/rule/all/0/member_of", "cycle"),
            ("/rule/all/1/member_of", "unknown-segment"),
        ]
        own, _ = parse({"member_of": str(a)})
        assert own is not None
        assert check_references(own, catalog, self_id=a)[0]["code"] == "cycle"


# --- the compiler against the Python reading, on real rows ------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(Settings, membership_scheduler_enabled=False))
    async with api_client(application):
        yield application


CHANNELS = ["web", "store", "app"]
TAGS = ["vip", "newsletter", "staff", "b2b"]


def _features(rng: random.Random, customer_id: uuid.UUID) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.75 else None

    def when(days: int) -> datetime | None:
        return maybe(NOW - timedelta(days=rng.randint(0, days), hours=rng.randint(0, 23)))

    orders = rng.randint(0, 6)
    return {
        "customer_id": customer_id,
        "kind": rng.choice(["person", "company"]),
        "display_name": maybe(rng.choice(["Ada Lovelace", "Grace O'Hopper", "Wei Zhang"])),
        "owner_id": maybe(rng.choice(["u1", "u2"])),
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "lifecycle_stage": maybe(rng.choice(["lead", "customer"])),
        "email_consent": maybe(rng.random() < 0.5),
        "customer_created_at": when(700),
        "order_count": orders,
        "total_spent": {"EUR": str(Decimal(rng.randint(0, 40000)) / 100)}
        if orders and rng.random() < 0.8
        else {},
        "last_order_at": when(400) if orders else None,
        "orders_30d": rng.randint(0, 2),
        "interactions_by_channel": {"email": rng.randint(1, 5)} if rng.random() < 0.5 else {},
        "open_tickets": rng.randint(0, 2),
        "last_csat": maybe(rng.randint(1, 5)),
    }


def _events(rng: random.Random, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    events = []
    for _ in range(rng.randint(0, 6)):
        at = NOW - timedelta(days=rng.randint(0, 120), minutes=rng.randint(0, 600))
        if rng.random() < 0.1:
            at = NOW + timedelta(days=1)  # future-dated: in no window yet
        if rng.random() < 0.7:
            attrs: dict[str, Any] = {
                "total": str(Decimal(rng.randint(100, 20000)) / 100),
                "currency": "EUR",
                "channel": rng.choice(CHANNELS),
                "skus": rng.sample(["A-1", "B-2", "C-3"], rng.randint(0, 2)),
            }
            events.append(
                {
                    "customer_id": customer_id,
                    "type": "order_placed",
                    "occurred_at": at,
                    "attrs": attrs,
                }
            )
        else:
            attrs = {"channel": rng.choice(["email", "call"]), "kind": "message"}
            events.append(
                {
                    "customer_id": customer_id,
                    "type": "interaction",
                    "occurred_at": at,
                    "attrs": attrs,
                }
            )
    return events


STATIC = uuid.UUID("00000000-0000-4000-8000-00000000aaaa")
INNER = uuid.UUID("00000000-0000-4000-8000-00000000bbbb")
INNER_RULE = {"field": "orders_30d", "op": "gte", "value": 1}

LEAVES: list[dict[str, Any]] = [
    {"field": "order_count", "op": "gte", "value": 3},
    {"field": "order_count", "op": "in", "value": [0, 2, 4]},
    {"field": "order_count", "op": "not_in", "value": [1, 2]},
    {"field": "total_spent.EUR", "op": "between", "value": ["50", "250.50"]},
    {"field": "total_spent.EUR", "op": "lt", "value": 100},
    {"field": "total_spent.USD", "op": "eq", "value": 0},
    {"field": "total_spent.EUR", "op": "exists"},
    {"field": "tags", "op": "contains", "value": "vip"},
    {"field": "tags", "op": "in", "value": ["staff", "b2b"]},
    {"field": "tags", "op": "exists"},
    {"field": "display_name", "op": "contains", "value": "O'H"},
    {"field": "display_name", "op": "ne", "value": "Wei Zhang"},
    {"field": "owner_id", "op": "eq", "value": "u1"},
    {"field": "lifecycle_stage", "op": "exists"},
    {"field": "email_consent", "op": "eq", "value": True},
    {"field": "email_consent", "op": "ne", "value": True},
    {"field": "customer_created_at", "op": "before", "value": "2025-12-31"},
    {"field": "customer_created_at", "op": "after", "value": "2026-03-01T08:00:00Z"},
    {"field": "customer_created_at", "op": "between", "value": ["2025-06-01", "2026-02-28"]},
    {"field": "last_order_at", "op": "within_last", "days": 60},
    {"field": "last_order_at", "op": "older_than", "days": 200},
    {"field": "orders_30d", "op": "gt", "value": 0},
    {"field": "interactions_by_channel.email", "op": "gte", "value": 3},
    {"field": "open_tickets", "op": "eq", "value": 0},
    {"field": "last_csat", "op": "lte", "value": 2},
    {"performed": "order_placed", "at_least": 2, "within_days": 30},
    {"performed": "order_placed", "at_most": 1, "within_days": 90},
    {
        "performed": "order_placed",
        "where": [
            {"field": "channel", "op": "in", "value": ["web", "app"]},
            {"field": "total", "op": "gte", "value": "40"},
        ],
        "at_least": 1,
        "within_days": 60,
    },
    {
        "performed": "order_placed",
        "where": [{"field": "skus", "op": "contains", "value": "A-1"}],
        "at_least": 1,
        "within_days": 120,
    },
    {
        "performed": "interaction",
        "where": [{"field": "channel", "op": "eq", "value": "call"}],
        "at_most": 0,
        "within_days": 45,
    },
    {"performed": "order_placed", "at_least": 0, "within_days": 1},
    {"member_of": str(STATIC)},
    {"member_of": str(INNER)},
]


def _random_rule(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return rng.choice(LEAVES)
    if roll < 0.6:
        return {"not": _random_rule(rng, depth + 1)}
    op = "all" if roll < 0.8 else "any"
    return {op: [_random_rule(rng, depth + 1) for _ in range(rng.randint(2, 4))]}


class TestCompiledSqlAgreesWithPython:
    @pytest.mark.asyncio(loop_scope="session")
    async def test_every_operator_and_random_rules_select_the_same_customers(
        self, app: FastAPI
    ) -> None:
        rng = random.Random(7)
        customers = [uuid.uuid4() for _ in range(80)]
        async with app.state.database.session() as session:
            await session.execute(insert(CustomerFeatures), [_features(rng, c) for c in customers])
            events = [e for c in customers for e in _events(rng, c)]
            await session.execute(insert(CustomerEvent), events)
            session.add(Segment(id=STATIC, name="static", kind="static", version=1))
            session.add(Segment(id=INNER, name="inner", kind="dynamic", version=1, rule=INNER_RULE))
            await session.flush()
            await session.execute(
                insert(SegmentMember),
                [{"segment_id": STATIC, "customer_id": c, "version": 1} for c in customers[::3]],
            )
        catalog = {
            STATIC: SegmentDef(STATIC, "static", 1, None),
            INNER: SegmentDef(INNER, "dynamic", 1, parse(INNER_RULE)[0]),
        }
        async with app.state.database.session() as session:
            rows = (
                await session.execute(
                    select(CustomerFeatures.__table__).where(
                        CustomerFeatures.customer_id.in_(customers)
                    )
                )
            ).mappings()
            facts = {r["customer_id"]: Facts(features=dict(r)) for r in rows}
            for e in (
                await session.execute(
                    select(CustomerEvent).where(CustomerEvent.customer_id.in_(customers))
                )
            ).scalars():
                facts[e.customer_id].events = [
                    *facts[e.customer_id].events,
                    (e.type, e.occurred_at, e.attrs),
                ]
            for c in customers[::3]:
                facts[c].static_members = {STATIC}

            rules = [*LEAVES, *(_random_rule(rng) for _ in range(120))]
            driver = await driver_connection(session)
            selected_somebody = 0
            for raw in rules:
                node, errors = parse(raw)
                assert errors == [], raw
                assert node is not None
                expected = {c for c, f in facts.items() if evaluate(node, f, NOW, catalog)}
                for bulk in (False, True):
                    sql = compile_rule(node, catalog, bulk=bulk)
                    got = {
                        r["customer_id"]
                        for r in await driver.fetch(
                            "SELECT f.customer_id FROM segmentation.customer_features f "
                            "WHERE $1::timestamptz IS NOT NULL AND f.customer_id = ANY($2::uuid[]) "
                            f"AND {sql}",
                            NOW,
                            customers,
                        )
                    }
                    assert got == expected, (raw, bulk)
                selected_somebody += 0 < len(expected) < len(customers)
            # the data is varied enough that most rules split the customers
            assert selected_somebody > len(rules) * 0.6
