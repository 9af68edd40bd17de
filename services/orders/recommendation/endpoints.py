from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from services.orders.customers import ensure_visible
from services.orders.product.schemas import ProductRead
from services.orders.recommendation.repository import recommend
from services.orders.recommendation.schemas import Recommendations, RecommendedProduct
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(prefix="/customers", tags=["recommendations"])


@router.get(
    "/{customer_id}/recommendations",
    summary="Products a customer is likely to want next",
    dependencies=[Depends(require_scopes("orders:read"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def customer_recommendations(
    customer_id: UUID,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=50, description="How many products, at most.")] = 10,
) -> Recommendations:
    """Item-to-item collaborative filtering over every order: products bought by the same
    customers as the products this customer bought (cosine similarity of their buyer sets,
    summed over the customer's products), best first, never one they already bought and
    never an inactive one. A customer without orders gets an empty list. The figures are
    kept current as orders are placed (no nightly batch)."""
    await ensure_visible(session, principal, customer_id)
    found = await recommend(session, customer_id, limit)
    return Recommendations(
        customer_id=customer_id,
        items=[
            RecommendedProduct(
                product=ProductRead.model_validate(r.product), score=r.score, because=r.because
            )
            for r in found
        ],
    )
