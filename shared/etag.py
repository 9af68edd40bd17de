"""Optimistic concurrency over HTTP: the ``ETag`` a read returns and the ``If-Match`` a write
sends back, declared once so every resource documents them the same way."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

__all__ = ["ETAG_RESPONSE", "IfMatch"]

#: ``responses={200: ETAG_RESPONSE}``: documents the ``ETag`` header of an answer.
ETAG_RESPONSE: dict[str, Any] = {
    "headers": {"ETag": {"description": 'The version, `"<n>"`: send it as `If-Match`.'}}
}

#: The ``If-Match`` request header of an update.
IfMatch = Annotated[
    str | None,
    Header(
        description="The `ETag` you read; a stale one answers 412 instead of overwriting "
        "someone else's change.",
        max_length=40,
    ),
]
