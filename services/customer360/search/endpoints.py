from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.customer360.customer.schemas import CustomerRead
from services.customer360.search.repository import search
from services.customer360.search.schemas import SearchHit, SearchResults
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import UnprocessableEntity, problem_responses

router = APIRouter(tags=["customers"])


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
            max_length=200,
            description="Name (Chinese, Latin or mixed; typos tolerated), part of an e-mail "
            "or of a phone number.",
            examples=["张伟", "zhnag wei", "zhang@exa", "5678"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many results.")] = 20,
) -> SearchResults:
    """Active customers within the caller's data scope matching `q`, best match first.

    Tolerates typos (`Zhnag Wei`), word order (`wei zhang`), Chinese names (`张伟`, `张 wei`),
    e-mail prefixes (`zhang@exa`) and phone fragments (`5678`, `138 1234 5678`). Merged and
    erased customers never appear. E-mails and phones are masked without `customers:pii`.
    A blank `q` is a `422`.
    """
    if not q.strip():
        raise UnprocessableEntity("q must not be blank")
    hits = await search(session, principal, q.strip(), limit)
    return SearchResults(
        items=[
            SearchHit(score=score, customer=CustomerRead.for_principal(c, principal))
            for c, score in hits
        ]
    )
