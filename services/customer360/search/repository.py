from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, Select, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import Customer
from services.customer360.search.query import ParsedQuery
from shared.auth import Principal
from shared.privacy import data_scope

#: Below this word similarity a Latin term is no match (pg_trgm's default is 0.6, which
#: misses two swapped letters in a short name: "zhnag" vs "zhang").
WORD_SIMILARITY_THRESHOLD = 0.6


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_statement(query: ParsedQuery, principal: Principal, limit: int) -> Select[Any]:
    """Active customers in the caller's scope matching ``query``, best first.

    Every branch is served by an index: phone digits and Latin text by pg_trgm GIN indexes
    (``LIKE '%…%'`` and the word-similarity operator ``<%``), CJK n-grams by a GIN index on
    the array (``@>``).
    """
    conditions: list[ColumnElement[bool]] = [
        Customer.status == "active",
        data_scope(principal, Customer.owner_id, Customer.team_id),
    ]
    score: ColumnElement[Any] = literal(1.0, Float)
    if query.digits is not None:
        conditions.append(Customer.phone_digits.like(f"%{like_escape(query.digits)}%"))
    if query.cjk:
        conditions.append(Customer.search_cjk.contains(list(query.cjk)))
    if query.latin:
        # doc %> query is query <% doc: the query is like some extent of the document
        word: ColumnElement[bool] = Customer.search_latin.op("%>")(query.latin)
        if len(query.latin) >= 3:
            word = or_(word, Customer.search_latin.like(f"%{like_escape(query.latin)}%"))
        conditions.append(word)
        score = func.word_similarity(query.latin, Customer.search_latin)
    return (
        select(Customer, score.label("score"))
        .where(*conditions)
        .order_by(score.desc(), Customer.updated_at.desc(), Customer.id)
        .limit(limit)
    )


async def search(
    session: AsyncSession, query: ParsedQuery, principal: Principal, limit: int
) -> list[tuple[Customer, float]]:
    await session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
        {"t": str(WORD_SIMILARITY_THRESHOLD)},
    )
    rows = await session.execute(search_statement(query, principal, limit))
    return [(customer, float(score)) for customer, score in rows]
