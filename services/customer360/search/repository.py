"""The search query. pg_trgm over ``customer.search_text`` (GIN trigram index).

A query matches a profile when pg_trgm's word similarity reaches ``THRESHOLD`` (typos,
reordered words, CJK names spelled as tokens) or when the query is a substring of the text
(partial phones such as ``5678``, e-mail prefixes such as ``zhang@exa``). Both use the same
index. Score: word similarity, plus 0.5 for a substring hit, so exact fragments rank first.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam, case, func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import Customer
from shared.auth import Principal
from shared.privacy import data_scope

__all__ = ["THRESHOLD", "search", "search_statement"]

THRESHOLD = 0.5


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def like_pattern(query: str) -> str | None:
    """``%query%`` with LIKE's metacharacters escaped; digits only when it is a phone.

    None for queries with CJK characters (the search text spells them as tokens) or shorter
    than three characters: a pattern without a trigram would read the whole index.
    """
    if _CJK.search(query):
        return None
    compact = re.sub(r"[\s\-().+]", "", query)
    if compact.isdigit():
        query = compact
    if len(query) < 3:
        return None
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_statement(principal: Principal, query: str, limit: int) -> Any:
    normalized = func.customer360.search_normalize(bindparam("q", query))
    st = Customer.search_text
    similarity = func.word_similarity(normalized, st)
    like = like_pattern(query)
    matches: Any = st.op("%>")(normalized)
    score: Any = similarity
    if like is not None:
        pattern: Any = bindparam("pattern", like)
        matches = or_(matches, st.like(pattern))
        score = similarity + case((st.like(pattern), 0.5), else_=0.0)
    return (
        select(Customer, score.label("score"))
        .where(
            Customer.status == "active",
            data_scope(principal, Customer.owner_id, Customer.team_id),
            matches,
        )
        .order_by(literal_column("score").desc(), Customer.id)
        .limit(limit)
    )


async def search(
    session: AsyncSession, principal: Principal, query: str, limit: int
) -> list[tuple[Customer, float]]:
    """Active customers in the principal's scope matching ``query``, best first."""
    await session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
        {"t": str(THRESHOLD)},
    )
    rows = await session.execute(search_statement(principal, query, limit))
    return [(row[0], round(float(row[1]), 4)) for row in rows]
