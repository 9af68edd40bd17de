"""ORM tables of orders, all in the ``orders`` schema."""

from services.orders.models.base import Base
from services.orders.models.deal import DEAL_STATUSES, Deal, DealStageChange, PipelineStage
from services.orders.models.order import (
    ORDER_STATUSES,
    SALES_CHANNELS,
    Order,
    OrderLine,
    Payment,
    Refund,
)
from services.orders.models.partner import PARTNER_EVENT_KINDS, PartnerEvent
from services.orders.models.product import Product
from services.orders.models.recommendation import CoPurchase, CustomerProduct, ProductBuyers

__all__ = [
    "DEAL_STATUSES",
    "ORDER_STATUSES",
    "PARTNER_EVENT_KINDS",
    "SALES_CHANNELS",
    "Base",
    "CoPurchase",
    "CustomerProduct",
    "Deal",
    "DealStageChange",
    "Order",
    "OrderLine",
    "PartnerEvent",
    "Payment",
    "PipelineStage",
    "Product",
    "ProductBuyers",
    "Refund",
]
