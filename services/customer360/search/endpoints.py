from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.customer360.customer.schemas import CustomerRead
from services.customer360.search.query import parse
from services.customer360.search.repository import search
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(tags=["customers"])


class SearchHit(BaseModel):
    score: float = Field(description="1 for an exact (contained) match; lower for fuzzy ones.")
    customer: CustomerRead


class SearchResult(BaseModel):
    items: list[SearchHit]


@router.get(
    "/customers:search",
    summary="Search customers",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 422),
)
async def search_customers(
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="Names (typos tolerated), Chinese names, mixed text, part of an "
            "e-mail, or three or more digits of a phone number.",
            examples=["张伟", "zhnag wei", "张 wei", "wei.zhang@exa", "5678"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResult:
    """Full-text and fuzzy search over names, e-mails and phones, best match first, within
    the caller's data scope (personal data masked without `customers:pii`). Chinese,
    Japanese and Korean names match by their characters; Latin text by trigram similarity,
    so `Zhnag` finds `Zhang`; a run of digits matches inside phone numbers."""
    parsed = parse(q)
    hits = (
        await search(session, parsed, principal, limit)
        if parsed.digits or parsed.cjk or parsed.latin
        else []
    )
    return SearchResult(
        items=[
            SearchHit(score=round(score, 3), customer=CustomerRead.for_principal(c, principal))
            for c, score in hits
        ]
    )
