"""ORM tables of segmentation, all in the ``segmentation`` schema."""

from services.segmentation.models.base import Base, customer_scope
from services.segmentation.models.customer_features import CustomerFeatures

__all__ = ["Base", "CustomerFeatures", "customer_scope"]
