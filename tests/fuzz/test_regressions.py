"""Bugs the contract fuzzer found, pinned down with plain assertions (no fuzzing needed)."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import httpx
import schemathesis

from gateway.auth.roles import ALL_SCOPES
from tests.fuzz.conftest import Stack
from tests.fuzz.test_contracts import _is_documented_gone, _is_stale_precondition
from tests.support import bearer

ALL = bearer(*sorted(ALL_SCOPES), subject="fuzz-regressions")


#: A valid value per custom-field type, for fields the fuzzer made required.
_CUSTOM_VALUES: dict[str, Any] = {
    "string": "x",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "date": "2000-01-01",
}


def _post_customer(base: str, name: str, **extra: Any) -> httpx.Response:
    """POST a customer, whatever custom fields the fuzzer defined (and made required) in
    this database before the regressions run."""
    fields = httpx.get(f"{base}/custom-fields", headers=ALL).json()
    custom = {
        f["key"]: f["options"][0] if f["type"] == "enum" else _CUSTOM_VALUES[f["type"]]
        for f in fields
        if f["required"]
    }
    return httpx.post(
        f"{base}/customers",
        json={"display_name": name, "custom_fields": custom, **extra},
        headers=ALL,
    )


def _create_customer(base: str, name: str) -> str:
    created = _post_customer(base, name)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


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


def test_external_id_systems_outside_the_key_pattern_are_documented_as_refused(
    stack: Stack,
) -> None:
    # ``patternProperties`` alone leaves other keys open: the fuzzer sent "û" as a system
    # name, the document allowed it and validation refused it.
    base = stack.urls["customer360"]
    schemas = httpx.get(f"{base}/openapi.json").json()["components"]["schemas"]
    for model in ("CustomerCreate", "CustomerPatch"):
        documented = schemas[model]["properties"]["external_ids"]["anyOf"][0]
        assert documented["additionalProperties"] is False, model
        assert list(documented["patternProperties"]) == [r"^[a-z0-9][a-z0-9_.-]{0,49}$"]
    refused = httpx.post(
        f"{base}/customers",
        json={"display_name": "Regression", "external_ids": {"Û": "1"}},
        headers=ALL,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "string_pattern_mismatch"


def test_a_tag_of_whitespace_alone_is_documented_as_refused(stack: Stack) -> None:
    # Tags are stripped: "\u000b" met ``minLength: 1`` in the document, and was refused as
    # too short once stripped. The document now asks for a character that is not blank.
    base = stack.urls["customer360"]
    schemas = httpx.get(f"{base}/openapi.json").json()["components"]["schemas"]
    tags = schemas["CustomerCreate"]["properties"]["tags"]["anyOf"][0]["items"]
    assert not re.search(tags["pattern"], "\u000b \u00a0\u001c\u0085")
    assert re.search(tags["pattern"], " vip ")
    for blank in ("\u000b", "\u001f", " \u00a0 "):
        refused = _post_customer(base, "Regression", tags=[blank])
        assert refused.status_code == 422, blank
        assert refused.json()["errors"][0]["pointer"] == "/body/tags/0"
    kept = _post_customer(base, "Regression", tags=[" vip "])
    assert kept.status_code == 201, kept.text
    assert kept.json()["tags"] == ["vip"]


def test_the_privacy_export_reaches_every_service(stack: Stack) -> None:
    # The fuzz stack once left customer360's calls to the other services unwired: every
    # export answered 503.
    base = stack.urls["customer360"]
    customer_id = _create_customer(base, "Export regression")
    exported = httpx.get(f"{base}/customers/{customer_id}/export", headers=ALL)
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["customer"]["id"] == customer_id
    assert (body["interactions"], body["orders"], body["segmentation"]) == ([], [], [])


def test_a_stale_if_match_is_a_precondition_failure_not_rejected_data(stack: Stack) -> None:
    # Stateful fuzzing PUT a care-plan rule with an If-Match it made up (or an ETag from an
    # earlier response): 412 is the contract there, and only there.
    base = stack.urls["interactions"]
    rule: dict[str, Any] = {"name": "Stale regression", "type": "post_purchase", "days_after": 7}
    created = httpx.post(f"{base}/care-plans/rules", json=rule, headers=ALL)
    assert created.status_code == 201, created.text
    rule_id, etag = created.json()["id"], created.headers["etag"]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operation = schema["/care-plans/rules/{rule_id}"]["PUT"]

    def put(if_match: str | None) -> tuple[Any, Any]:
        headers = {} if if_match is None else {"If-Match": if_match}
        case = operation.Case(path_parameters={"rule_id": rule_id}, headers=headers, body=rule)
        return case, case.call(headers=ALL)

    case, response = put(etag)
    assert response.status_code == 200
    assert not _is_stale_precondition(response, case)
    case, response = put(etag)  # the ETag of the first answer, now stale
    assert response.status_code == 412
    assert response.json()["current_etag"] == '"2"'
    assert _is_stale_precondition(response, case)
    case, response = put('W/"made-up"')
    assert (response.status_code, _is_stale_precondition(response, case)) == (412, True)
    case, response = put(None)
    assert (response.status_code, _is_stale_precondition(response, case)) == (200, False)


def test_erasing_an_erased_customer_again_is_gone_not_rejected_data(stack: Stack) -> None:
    # Stateful fuzzing replayed DELETE /customers/{id} after the customer was erased: the
    # documented 410 is the right answer, as 404 is for an id that never existed.
    base = stack.urls["customer360"]
    customer_id = _create_customer(base, "Gone regression")
    operation = schemathesis.openapi.from_url(f"{base}/openapi.json")["/customers/{customer_id}"][
        "DELETE"
    ]
    case = operation.Case(path_parameters={"customer_id": customer_id})
    first = case.call(headers=ALL)
    assert first.status_code == 204
    assert not _is_documented_gone(first, case)
    again = case.call(headers=ALL)
    assert again.status_code == 410
    assert again.json()["type"] == "/problems/customer-erased"
    assert _is_documented_gone(again, case)
