"""Bugs the contract fuzzer found, pinned down with plain assertions (no fuzzing needed)."""

from __future__ import annotations

import re
from uuid import uuid4

import httpx

from gateway.auth.roles import ALL_SCOPES
from tests.fuzz.conftest import Stack
from tests.support import bearer

ALL = bearer(*sorted(ALL_SCOPES), subject="fuzz-regressions")


def test_metrics_are_documented_as_the_text_they_are(stack: Stack) -> None:
    base = stack.urls["orders"]
    spec = httpx.get(f"{base}/openapi.json").json()
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_405_allow_names_every_method_of_the_resource(stack: Stack) -> None:
    # GET and POST /segments are two routes: Starlette's 405 used to name only the first.
    response = httpx.request("PUT", f"{stack.urls['segmentation']}/segments", headers=ALL)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["type"] == "/problems/method-not-allowed"
    # ``/customers/{id}:merge`` also matches ``/customers/{id}``; its Allow is its own.
    merge = f"{stack.urls['customer360']}/customers/{uuid4()}:merge"
    response = httpx.request("PUT", merge, headers=ALL)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_care_plan_due_time_is_documented_as_a_local_time(stack: Stack) -> None:
    base = stack.urls["interactions"]
    spec = httpx.get(f"{base}/openapi.json").json()
    due_time = spec["components"]["schemas"]["RuleRead"]["properties"]["due_time"]
    assert "format" not in due_time  # RFC 3339 ``time`` requires an offset; this one has none
    response = httpx.post(
        f"{base}/care-plans/rules",
        json={"name": "Regression revisit", "type": "low_csat", "due_time": "08:30"},
        headers=ALL,
    )
    assert response.status_code == 201
    assert response.json()["due_time"] == "08:30:00"
    assert re.fullmatch(due_time["pattern"], response.json()["due_time"])


def test_a_nul_character_is_a_client_mistake_not_a_500(stack: Stack) -> None:
    base = stack.urls["customer360"]
    response = httpx.get(f"{base}/customers:search", params={"q": "ab\x00cd"}, headers=ALL)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]
    created = httpx.post(
        f"{stack.urls['interactions']}/tickets",
        json={"customer_id": str(uuid4()), "category": "incident", "title": "a\x00b"},
        headers={**ALL, "Idempotency-Key": str(uuid4())},
    )
    assert created.status_code == 422
    assert "NUL" in created.json()["detail"]
