"""Cursor (keyset) pagination.

A cursor is an opaque, URL-safe token holding the sort-key values of the last item returned;
the next page is ``WHERE (k1, k2) > (:v1, :v2) ORDER BY k1, k2 LIMIT n + 1``. Unlike offsets
it stays fast on deep pages and never skips or repeats rows when others are inserted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, DateTime, Integer, Select, String, Uuid, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.types import TypeEngine

from shared.errors import BadRequest

__all__ = ["CursorDep", "CursorPage", "CursorParams", "decode_cursor", "encode_cursor", "paginate"]

T = TypeVar("T")
R = TypeVar("R")


class CursorPage(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` as ``cursor`` to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Opaque; absent on the last page.", examples=["WyIyMDI2Il0"]
    )


class CursorParams(BaseModel):
    cursor: str | None = None
    limit: int = 50


async def _cursor_params(
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page.", max_length=512)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> CursorParams:
    return CursorParams(cursor=cursor, limit=limit)


#: ``?cursor=…&limit=…`` of a list endpoint.
CursorDep = Annotated[CursorParams, Depends(_cursor_params)]


def _encode_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"t": v.isoformat()}
    if isinstance(v, UUID):
        return {"u": str(v)}
    return v


def _decode_value(v: Any) -> Any:
    if isinstance(v, dict) and len(v) == 1:
        ((tag, raw),) = v.items()
        if tag == "t":
            return datetime.fromisoformat(raw)
        if tag == "u":
            return UUID(raw)
    return v


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong shape")
        return [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise BadRequest(
            "invalid cursor", errors=[{"pointer": "/query/cursor", "detail": "invalid"}]
        ) from None


#: Column types whose cursor values are checked, and the Python type a value must have.
_CURSOR_TYPES: tuple[tuple[type[TypeEngine[Any]], type], ...] = (
    (DateTime, datetime),
    (Uuid, UUID),
    (String, str),
    (Integer, int),
)


def _check_types(
    keys: Sequence[QueryableAttribute[Any] | ColumnElement[Any]], values: Sequence[Any]
) -> None:
    """Refuse a cursor made for another sort order (its values have other types)."""
    for key, value in zip(keys, values, strict=True):
        expected = next((py for sa, py in _CURSOR_TYPES if isinstance(key.type, sa)), None)
        if expected is not None and value is not None and not isinstance(value, expected):
            raise BadRequest(
                "invalid cursor for this list and sort order",
                errors=[{"pointer": "/query/cursor", "detail": "invalid"}],
            )


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    *,
    keys: Sequence[QueryableAttribute[Any] | ColumnElement[Any]],
    key_of: Callable[[R], Sequence[Any]],
    params: CursorParams,
    descending: bool = False,
) -> tuple[list[R], str | None]:
    """Run ``statement`` (without ORDER BY/LIMIT) one page at a time, ordered on ``keys``.

    Ascending by default; ``descending`` pages newest-first. The keys must be unique together
    (end them with the primary key), and a page is a row-value comparison on them, which a
    B-tree index on the same columns serves.
    """
    if params.cursor:
        after = decode_cursor(params.cursor, len(keys))
        _check_types(keys, after)
        row, last = tuple_(*keys), tuple_(*after)
        statement = statement.where(row < last if descending else row > last)
    order = [k.desc() for k in keys] if descending else list(keys)
    statement = statement.order_by(*order).limit(params.limit + 1)
    rows = list((await session.scalars(statement)).all())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = encode_cursor(key_of(rows[-1]))
    return rows, next_cursor
