from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.segmentation.features.repository import CustomerFeaturesRepository
from services.segmentation.models import CustomerFeatures
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import NotFound


async def get_features_or_404(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep
) -> CustomerFeatures:
    features = await CustomerFeaturesRepository(session).get(customer_id, principal)
    if features is None:
        raise NotFound(f"no features for customer {customer_id} yet")
    return features


CustomerFeaturesDep = Annotated[CustomerFeatures, Depends(get_features_or_404)]
