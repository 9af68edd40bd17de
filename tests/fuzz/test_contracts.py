"""Contract fuzzing with schemathesis: every service's OpenAPI and the gateway's merged one.

Every built-in check runs (server errors; status code, content type, headers and body
conformance; ``Allow`` on 405; negative data rejected; positive data accepted; unsupported
methods; auth not ignored; use after free…) over the examples, coverage and fuzzing phases,
positive and negative, with valid tokens: the services get an internal token carrying every
scope, the gateway an admin dev token. Where the fuzzer cannot know better, it is told (see
:func:`_positive_data_acceptance` and :func:`_unsupported_method`), never silenced wholesale.

``RAPPORT_FUZZ_EXAMPLES`` sets the examples per operation: a handful in the normal test run,
``make fuzz`` raises it so every spec gets ≥ 1,000.
"""

from __future__ import annotations

import os
import re
from typing import Any, get_args

import hypothesis
import pytest
import schemathesis
from pydantic_core.core_schema import ErrorType
from schemathesis import Case, CheckContext, Response
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from gateway.auth.roles import ALL_SCOPES
from tests.fuzz.conftest import Stack
from tests.support import bearer

AnyCase = Case[Any]


@schemathesis.serializer("text/csv", "application/x-ndjson", "application/ndjson")
def _text(ctx: Any, value: Any) -> bytes:
    """Customer imports take CSV or NDJSON text: send a generated string as it is."""
    return value if isinstance(value, bytes) else str(value).encode()


#: Examples per operation and phase; ``make fuzz`` raises it (and turns on the coverage phase).
EXAMPLES = int(os.environ.get("RAPPORT_FUZZ_EXAMPLES", "5"))
COVERAGE = os.environ.get("RAPPORT_FUZZ_COVERAGE", "0") == "1"
#: The short run in ``make test`` is a regression gate: the same examples every run (so a
#: red CI names a change, not a draw), chosen by ``RAPPORT_FUZZ_SEED`` (default 1). ``make
#: fuzz`` explores: new random examples every run, unless a seed is given.
SEED = os.environ.get("RAPPORT_FUZZ_SEED") or (None if COVERAGE else "1")

#: Rejections no JSON Schema can foresee: business rules checked by validators (an inactive
#: ISO 4217 code, an impossible phone number, an unknown product or custom field, a range
#: whose end precedes its start) and opaque cursors the server did not issue. Pydantic's own
#: schema-level codes (``missing``, ``uuid_parsing``, ``greater_than``…) stay failures: they
#: mean the document promised something the server refuses.
SEMANTIC_CODES = frozenset({"value_error", None})
#: Pydantic's own error types; any other ``code`` is a service's business rule.
PYDANTIC_CODES = frozenset(get_args(ErrorType))


def _is_semantic_rejection(response: Response) -> bool:
    if response.status_code == 415:
        # A Content-Type header the generator filled in (e.g. empty) for a body it sent:
        # the request body's media types are documented, the header's values cannot be.
        return True
    if response.status_code not in (400, 422):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if isinstance(body, dict) and body.get("type") == "/problems/invalid-import-file":
        return True  # a CSV/NDJSON file's rows and header are not what a schema describes
    if (
        response.status_code == 422
        and isinstance(body, dict)
        and body.get("type") not in (None, "/problems/validation-failed")
    ):
        # A business rule judged against stored state (an empty audience, a segment
        # segmentation does not know, an exhausted coupon): its own documented problem type,
        # never schema validation's.
        return True
    if isinstance(body, dict) and "NUL (U+0000)" in str(body.get("detail")):
        # JSON strings may hold U+0000, PostgreSQL text cannot: refused by policy, still
        # generated so that a NUL reaching the database another way shows up as a 500.
        return True
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return False
    return all(
        isinstance(e, dict)
        and (e.get("code") in SEMANTIC_CODES or e.get("code") not in PYDANTIC_CODES)
        for e in errors
    )


def _is_stale_precondition(response: Response, case: AnyCase) -> bool:
    """A documented ``412`` to an ``If-Match`` that is not the resource's current ETag.

    The fuzzer makes ``If-Match`` values up (``"a1"``, ``W/"x"``…), and stateful links may
    replay the ETag of an earlier response after the resource has changed again: refusing to
    overwrite then *is* the contract (RFC 9110 §13.1.1), a state mismatch like ``409``, not a
    rejection of the data. It counts only when the operation documents ``412``, the request
    carried ``If-Match``, and the problem names a current version the request did not send;
    a 412 to the current ETag, or without ``If-Match``, still fails."""
    if response.status_code != 412:
        return False
    if "412" not in case.operation.definition.raw.get("responses", {}):
        return False
    sent = {k.lower(): v for k, v in (case.headers or {}).items()}.get("if-match")
    if not isinstance(sent, str):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or body.get("type") != "/problems/precondition-failed":
        return False
    if "current_etag" in body:
        current = body["current_etag"]
    elif "version" in body:
        current = f'"{body["version"]}"'
    else:
        return False
    return sent.strip() != current


def _is_documented_gone(response: Response, case: AnyCase) -> bool:
    """A documented ``410`` problem: the resource existed and was erased, e.g. a stateful
    sequence that deletes a customer and then replays the link to delete it again. It is
    the answer ``404`` is for an id that never existed (which the check accepts), made
    precise; a ``410`` the operation does not document still fails."""
    if response.status_code != 410:
        return False
    if "410" not in case.operation.definition.raw.get("responses", {}):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.headers.get("content-type", [""])[0].startswith("application/problem+json")
        and isinstance(body, dict)
        and body.get("status") == 410
    )


@schemathesis.check
def _positive_data_acceptance(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """``positive_data_acceptance``, except for semantic rejections (:data:`SEMANTIC_CODES`),
    stale preconditions (:func:`_is_stale_precondition`) and what is gone for good
    (:func:`_is_documented_gone`)."""
    try:
        return openapi_checks.positive_data_acceptance(ctx, response, case)
    except AssertionError:
        if (
            _is_semantic_rejection(response)
            or _is_stale_precondition(response, case)
            or _is_documented_gone(response, case)
        ):
            return None
        raise


def _template(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]+\}", path)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$")


@schemathesis.check
def _unsupported_method(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """``unsupported_method``, except where another documented path also matches the URL:
    ``PATCH /customers/{id}:merge`` *is* ``PATCH /customers/{id}`` with an id that is not a
    UUID, so 422 (validation) is the right answer there, not 405."""
    try:
        return openapi_checks.unsupported_method(ctx, response, case)
    except AssertionError:
        own = case.operation.path
        paths = case.operation.schema.raw_schema.get("paths", {})
        formatted = case.formatted_path
        if any(p != own and _template(p).match(formatted) for p in paths):
            return None
        raise


#: schemathesis' default rejections of schema-violating data, plus 413 (see :func:`_load`)
#: and 410: an erased resource is refused before its body is read, as an id that never
#: existed is with 404 (which the default accepts). A 410 an operation does not document
#: still fails, by the status-code conformance check.
NEGATIVE_REJECTIONS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "410", "413"]

REPLACED: list[Any] = [openapi_checks.positive_data_acceptance, openapi_checks.unsupported_method]
ADDED: list[Any] = [_positive_data_acceptance, _unsupported_method]


def _load(stack: Stack, part: str, token: str, scheme: str = "HTTPBearer") -> Any:
    base = stack.urls[part]
    config = schemathesis.Config.from_dict(
        {
            "base-url": base,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": SEED is not None,
            },
            **({"seed": int(SEED)} if SEED is not None else {}),
            # The coverage phase (deterministic boundary and negative cases, dozens per
            # operation whatever the example count) is for ``make fuzz``; CI keeps to the
            # examples and fuzzing phases.
            "phases": {"coverage": {"enabled": COVERAGE}},
            "checks": {
                "enabled": True,
                # A body over the size cap is refused before it is parsed, with the documented
                # 413 problem: a string just past a 100,000-character ``maxLength`` is > 1 MiB
                # once JSON-escaped (six-byte ``\u`` escapes), so that is the rejection it gets.
                "negative_data_rejection": {"expected-statuses": NEGATIVE_REJECTIONS},
            },
            "auth": {"openapi": {scheme: {"bearer": token}}},
            "request-timeout": 30,
        }
    )
    return schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)


def _service_schema(stack: Stack, part: str) -> Any:
    token = bearer(*sorted(ALL_SCOPES), subject="fuzz")["Authorization"].removeprefix("Bearer ")
    return _load(stack, part, token)


@pytest.fixture(scope="session")
def customer360(stack: Stack) -> Any:
    return _service_schema(stack, "customer360")


@pytest.fixture(scope="session")
def interactions(stack: Stack) -> Any:
    return _service_schema(stack, "interactions")


@pytest.fixture(scope="session")
def orders(stack: Stack) -> Any:
    return _service_schema(stack, "orders")


@pytest.fixture(scope="session")
def segmentation(stack: Stack) -> Any:
    return _service_schema(stack, "segmentation")


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Any:
    return _load(stack, "gateway", stack.gateway_token(), "bearerAuth")


#: Open contract deviations, found by this fuzzer and not fixed yet (see the report of issue
#: #10): they are counted and listed in the summary, not failed, unless RAPPORT_FUZZ_STRICT=1.
#: Each is a (failure class, predicate on the failure message and response) pair, narrow on
#: purpose: anything else of the same check still fails.
DECIMAL_CODES = frozenset(
    {
        "decimal_parsing",
        "decimal_max_digits",
        "decimal_max_places",
        "decimal_whole_digits",
        "finite_number",  # "-Infinity", "NaN": strings the string branch lets through
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    }
)
STRICT = os.environ.get("RAPPORT_FUZZ_STRICT") == "1"


def _error_codes(response: Response) -> set[str]:
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str(e.get("code")) for e in errors or [] if isinstance(e, dict)}


def _known_deviation(failure: Exception, case: AnyCase, response: Response) -> str | None:
    message = str(getattr(failure, "message", failure))
    code = getattr(failure, "code", "")
    label = case.operation.label.replace("/api/v1/", "/", 1)
    lax = "Incorrect type" in message or "violates `type`" in message
    if code == "ST201" and lax and response.status_code < 300:
        # Pydantic's lax mode: false → 0 for an integer, 0 → false for a boolean, a number
        # → a Unix time for a date-time query parameter. Request models are not strict.
        return "lax type coercion"
    if (
        code == "ST202"
        and (codes := _error_codes(response)) & DECIMAL_CODES
        and all(c in DECIMAL_CODES or c in SEMANTIC_CODES or c not in PYDANTIC_CODES for c in codes)
    ):
        # Decimals are documented as number | string; the string branch loses the bounds
        # (> 0, max digits/places), so "0" or "1e9" look valid to any client.
        return "decimal string constraints undocumented"
    if code == "ST201" and label == "POST /imports/customers" and response.status_code < 300:
        # Our text serializer sends any generated value as text, which makes it a valid file.
        return "import bodies are sent as text whatever their generated type"
    if code == "ST201" and label == "POST /interactions:batch" and response.status_code == 200:
        return "batch ingest reports invalid events per item (200), by design"
    if code == "ST202" and label == "PATCH /custom-fields/{key}":
        return "PATCH documents null for fields it refuses to clear"
    if code == "ST202" and label == "POST /interactions" and _metadata_misfit(response):
        return "interaction metadata documented as a union without a discriminator"
    return None


def _metadata_misfit(response: Response) -> bool:
    """Every error refuses metadata that fits another kind's shape (or is semantic, such as
    an implausible time beside it), and at least one is about the metadata."""
    try:
        body = response.json()
    except ValueError:
        return False
    found = body.get("errors") if isinstance(body, dict) else None
    errors = [e for e in found or [] if isinstance(e, dict)]

    def misfit(error: dict[str, Any]) -> bool:
        return str(error.get("pointer", "")).startswith("/body/metadata") and error.get("code") in (
            "extra_forbidden",
            "missing",
        )

    def semantic(error: dict[str, Any]) -> bool:
        return error.get("code") in SEMANTIC_CODES or error.get("code") not in PYDANTIC_CODES

    return any(map(misfit, errors)) and all(misfit(e) or semantic(e) for e in errors)


def _run(stack: Stack, spec: str, case: AnyCase) -> None:
    stack.examples[spec] = stack.examples.get(spec, 0) + 1
    _validate(stack, case, case.call())


def _validate(stack: Stack, case: AnyCase, response: Response) -> None:
    try:
        case.validate_response(response, excluded_checks=REPLACED, additional_checks=ADDED)
    except FailureGroup as group:
        if STRICT:
            raise
        rest = []
        for failure in group.exceptions:
            reason = _known_deviation(failure, case, response)
            if reason is None:
                rest.append(failure)
            else:
                key = f"{reason}: {case.operation.label}"
                stack.known[key] = stack.known.get(key, 0) + 1
        if rest:
            raise FailureGroup(rest, str(group)) from None
    except AssertionError as failure:
        if STRICT or _known_deviation(failure, case, response) is None:
            raise


@schemathesis.pytest.from_fixture("customer360").parametrize()
def test_customer360(case: AnyCase, stack: Stack) -> None:
    _run(stack, "customer360", case)


@schemathesis.pytest.from_fixture("interactions").parametrize()
def test_interactions(case: AnyCase, stack: Stack) -> None:
    _run(stack, "interactions", case)


@schemathesis.pytest.from_fixture("orders").parametrize()
def test_orders(case: AnyCase, stack: Stack) -> None:
    _run(stack, "orders", case)


@schemathesis.pytest.from_fixture("segmentation").parametrize()
def test_segmentation(case: AnyCase, stack: Stack) -> None:
    _run(stack, "segmentation", case)


@schemathesis.pytest.from_fixture("gateway").parametrize()
def test_gateway(case: AnyCase, stack: Stack) -> None:
    _run(stack, "gateway", case)


#: Steps per stateful scenario and scenarios per spec (``make fuzz`` scales with the examples).
STATEFUL_SCENARIOS = max(3, EXAMPLES // 2)


@pytest.mark.parametrize(
    "spec", ["customer360", "interactions", "orders", "segmentation", "gateway"]
)
def test_stateful(spec: str, request: pytest.FixtureRequest, stack: Stack) -> None:
    """Sequences along the links schemathesis infers (Location headers, ids a response
    returns and another operation takes): create, then read, update, act on, delete it."""
    schema = request.getfixturevalue(spec)
    base = schema.as_state_machine()
    label = f"{spec} (stateful)"

    class Machine(base):  # type: ignore[misc,valid-type]
        def validate_response(
            self, response: Response, case: AnyCase, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            stack.examples[label] = stack.examples.get(label, 0) + 1
            _validate(stack, case, response)

    settings = hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=6,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    for attempt in range(1, 4):
        try:
            Machine.run(settings=settings)
            return
        except hypothesis.errors.FlakyStrategyDefinition:
            # schemathesis draws stateful UUIDs from a true-random source, so when Hypothesis
            # replays a sequence the draws differ and it stops: a generator defect, not an
            # answer of ours (a failed check raises FailureGroup). Run a fresh sequence.
            key = f"stateful run restarted after a generator inconsistency: {spec}"
            stack.known[key] = stack.known.get(key, 0) + 1
            if attempt == 3:
                raise
