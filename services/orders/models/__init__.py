"""ORM tables of orders, all in the ``orders`` schema."""

from services.orders.models.base import Base
from services.orders.models.product import Product

__all__ = ["Base", "Product"]
