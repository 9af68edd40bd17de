"""ORM tables of customer360, all in the ``customer360`` schema."""

from services.customer360.models.base import Base
from services.customer360.models.customer import Customer

__all__ = ["Base", "Customer"]
