"""ORM tables of orders, all in the ``orders`` schema."""

from services.orders.models.base import Base
from services.orders.models.order import (
    ORDER_STATUSES,
    SALES_CHANNELS,
    Order,
    OrderLine,
    Payment,
    Refund,
)
from services.orders.models.product import Product

__all__ = [
    "ORDER_STATUSES",
    "SALES_CHANNELS",
    "Base",
    "Order",
    "OrderLine",
    "Payment",
    "Product",
    "Refund",
]
