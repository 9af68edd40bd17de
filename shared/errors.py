"""Errors and their RFC 9457 problem-details rendering.

Every error a client can cause is a :class:`RapportError` subclass that carries its HTTP
status and a stable problem ``type``; one set of handlers renders them (and FastAPI's own
validation and routing errors) as ``application/problem+json``. Services raise these and
never ``HTTPException``.

Error tree::

    RapportError                      500 internal-error (base; never raised directly)
    ├── BadRequest                    400 bad-request
    │   └── MalformedBody             400 malformed-body
    ├── Unauthorized                  401 unauthorized
    ├── Forbidden                     403 forbidden
    ├── NotFound                      404 not-found
    ├── Conflict                      409 conflict
    ├── PreconditionFailed            412 precondition-failed
    ├── PayloadTooLarge               413 payload-too-large
    ├── UnprocessableEntity           422 validation-failed
    ├── TooManyRequests               429 too-many-requests
    └── ServiceUnavailable            503 service-unavailable
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.db import UNAVAILABLE_ERRORS, database_unavailable, lost_a_race

__all__ = [
    "PROBLEM_JSON",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "MalformedBody",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Problem",
    "RapportError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableEntity",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "raise_if_invalid",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details, as every Rapport error is rendered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["customer 7c1e… does not exist"])
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors (JSON pointer + message)."
    )


class RapportError(Exception):
    """Base of every error Rapport renders as a problem."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = [dict(e) for e in errors] if errors is not None else None
        self.headers = dict(headers or {})
        self.extensions = extensions

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase

    @classmethod
    def type_uri(cls) -> str:
        return PROBLEM_BASE + cls.slug


class BadRequest(RapportError):
    status = 400
    slug = "bad-request"


class MalformedBody(BadRequest):
    slug = "malformed-body"


class Unauthorized(RapportError):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(RapportError):
    status = 403
    slug = "forbidden"


class NotFound(RapportError):
    status = 404
    slug = "not-found"


class Conflict(RapportError):
    status = 409
    slug = "conflict"


class PreconditionFailed(RapportError):
    status = 412
    slug = "precondition-failed"


class PayloadTooLarge(RapportError):
    status = 413
    slug = "payload-too-large"


class UnprocessableEntity(RapportError):
    status = 422
    slug = "validation-failed"


def raise_if_invalid(errors: Sequence[Mapping[str, Any]]) -> None:
    """422 listing every ``{"pointer", "detail"}`` found, if any: all at once, not the
    first one only."""
    if errors:
        raise UnprocessableEntity(
            "; ".join(f"{e['pointer']}: {e['detail']}" for e in errors[:5]), errors=errors
        )


class TooManyRequests(RapportError):
    status = 429
    slug = "too-many-requests"


class ServiceUnavailable(RapportError):
    status = 503
    slug = "service-unavailable"


#: An ``X-Forwarded-Prefix`` taken as it is: a short path of plain segments.
_FORWARDED_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+){1,4}")


def _public_path(request: Request) -> str:
    """The request's path as the caller wrote it: behind the gateway, with the public prefix
    the gateway stripped (``X-Forwarded-Prefix``), so a problem's ``instance`` names the URL
    the client called."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    if prefix and _FORWARDED_PREFIX.fullmatch(prefix):
        return prefix + request.url.path
    return request.url.path


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    request: Request | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = _public_path(request)
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _pointer(loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location into a JSON pointer into the request part it names."""
    # pydantic marks a dict key's own error with a "[key]" step: the key is the previous one.
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc if p != "[key]"]
    return "/" + "/".join(parts)


async def _rapport_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RapportError)
    return problem_response(
        exc.status,
        exc.slug,
        exc.detail,
        title=exc.title,
        request=request,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem_response(
            400, MalformedBody.slug, "The request body is not valid JSON.", request=request
        )
    content_type = request.headers.get("content-type", "")
    if (
        request.method in ("POST", "PUT", "PATCH")
        and content_type
        and not _is_json(content_type)
        and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in raw)
    ):
        return problem_response(
            415,
            "unsupported-media-type",
            f"Send the body as application/json (got {content_type.split(';')[0]}).",
            request=request,
        )
    errors = [
        {
            "pointer": _pointer(e.get("loc", ())),
            "detail": e.get("msg", "invalid"),
            "code": e.get("type", "invalid"),
        }
        for e in raw
    ]
    return problem_response(
        422,
        UnprocessableEntity.slug,
        "The request is invalid; see errors.",
        request=request,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
        415: "unsupported-media-type",
    }.get(exc.status_code, "http-error")
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return problem_response(exc.status_code, slug, detail, request=request, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the resource supports (RFC 9110 §10.2.1): Starlette's 405 names only the
    first route whose path matched, while e.g. ``GET`` and ``POST /segments`` are two routes."""
    matching: dict[str, set[str]] = {}
    for route in _leaf_routes(request.app.router.routes):
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            matching.setdefault(route.path, set()).update(route_methods)
    if not matching:
        return ""
    # The most specific template is the resource: ``/tasks/{id}:complete``, not ``/tasks/{id}``.
    resource = max(matching, key=lambda path: len(re.sub(r"\{[^}]*\}", "", path)))
    return ", ".join(sorted(matching[resource]))


def _leaf_routes(routes: Sequence[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router wrapper
        if included is not None:
            yield from _leaf_routes(included.routes)
        else:
            yield route


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL text cannot hold U+0000: a client's NUL is a client mistake, not a 500
    # (the statement failed, so nothing was written).
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) == _CHARACTER_NOT_IN_REPERTOIRE:
        return problem_response(
            422,
            UnprocessableEntity.slug,
            "Text must not contain NUL (U+0000) characters.",
            request=request,
        )
    return await _unhandled(request, exc)


#: What a client should wait before trying again while the database is unavailable.
_UNAVAILABLE_RETRY_AFTER_S = 2


_CHARACTER_NOT_IN_REPERTOIRE = "22021"


def _try_again(request: Request, detail: str, retry_after_s: int) -> JSONResponse:
    """503: not the request's fault, and its transaction did not commit."""
    return problem_response(
        503,
        ServiceUnavailable.slug,
        detail,
        request=request,
        headers={"Retry-After": str(retry_after_s)},
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return _try_again(
        request,
        "The database is unavailable; nothing was changed. Try again shortly.",
        _UNAVAILABLE_RETRY_AFTER_S,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        return await _unavailable(request, exc)
    if lost_a_race(exc):
        # PostgreSQL aborted the transaction only because a concurrent one raced it (a
        # deadlock or a serialization failure): nothing was written, the same request again
        # succeeds. Our lock orders are meant to make this rare, so it is logged loudly.
        logger.warning("transaction lost a race: %s: %s", type(exc).__name__, exc)
        return _try_again(
            request,
            "The request collided with a concurrent change; nothing was changed. Try again.",
            1,
        )
    logger.exception("unhandled error", exc_info=exc)
    return problem_response(
        500, RapportError.slug, "An unexpected error occurred.", request=request
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as RFC 9457 problem details."""
    app.add_exception_handler(RapportError, _rapport_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    for unavailable in UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _unhandled)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the problems an endpoint can answer."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
