from fastapi import APIRouter, Depends

from services.segmentation.features.dependencies import CustomerFeaturesDep
from services.segmentation.features.schemas import CustomerFeaturesRead
from shared.auth import require_scopes
from shared.errors import problem_responses

router = APIRouter(prefix="/customers", tags=["features"])


@router.get(
    "/{customer_id}/features",
    summary="Get a customer's features",
    dependencies=[Depends(require_scopes("segments:read"))],
    responses=problem_responses(401, 403, 404),
)
async def get_customer_features(features: CustomerFeaturesDep) -> CustomerFeaturesRead:
    """What segmentation has learnt about one customer from the other services' events:
    profile attributes and consent, orders (count, spend per currency, rolling 30/90/365-day
    counts), interactions by channel and kind, open tickets, the latest CSAT and NPS. These
    are the fields a segment rule tests.

    The features follow the events, so they lag the source by the time it takes an event to
    arrive (usually well under a second). `404` means no event about this customer has
    been seen yet, which is also what a newly created customer looks like for a moment.
    """
    return CustomerFeaturesRead.model_validate(features)
