"""ORM tables of segmentation, all in the ``segmentation`` schema."""

from services.segmentation.models.base import Base, customer_scope, idempotency
from services.segmentation.models.customer_features import CustomerFeatures
from services.segmentation.models.segment import (
    MAX_WINDOW_DAYS,
    CustomerEvent,
    Segment,
    SegmentMember,
)

__all__ = [
    "MAX_WINDOW_DAYS",
    "Base",
    "CustomerEvent",
    "CustomerFeatures",
    "Segment",
    "SegmentMember",
    "customer_scope",
    "idempotency",
]
