"""ORM tables of interactions, all in the ``interactions`` schema."""

from services.interactions.models.base import Base
from services.interactions.models.interaction import Interaction

__all__ = ["Base", "Interaction"]
