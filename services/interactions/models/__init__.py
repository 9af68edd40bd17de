"""ORM tables of interactions, all in the ``interactions`` schema."""

from services.interactions.models.base import Base, customer_scope
from services.interactions.models.interaction import Interaction

__all__ = ["Base", "Interaction", "customer_scope"]
