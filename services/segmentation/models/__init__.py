"""ORM tables of segmentation, all in the ``segmentation`` schema."""

from services.segmentation.models.analytics_passes import AnalyticsPass
from services.segmentation.models.base import Base, customer_scope, idempotency
from services.segmentation.models.customer_features import CustomerFeatures
from services.segmentation.models.customer_orders import CustomerOrder
from services.segmentation.models.customer_redirects import CustomerRedirect
from services.segmentation.models.customer_scores import CustomerScore
from services.segmentation.models.rfm_boundaries import RfmBoundary
from services.segmentation.models.segment import (
    MAX_WINDOW_DAYS,
    CustomerEvent,
    Segment,
    SegmentMember,
)

__all__ = [
    "MAX_WINDOW_DAYS",
    "AnalyticsPass",
    "Base",
    "CustomerEvent",
    "CustomerFeatures",
    "CustomerOrder",
    "CustomerRedirect",
    "CustomerScore",
    "RfmBoundary",
    "Segment",
    "SegmentMember",
    "customer_scope",
    "idempotency",
]
