"""ORM tables of orders, all in the ``orders`` schema."""

from services.orders.models.base import Base
from services.orders.models.deal import DEAL_STATUSES, Deal, DealStageChange, PipelineStage
from services.orders.models.loyalty import (
    ENTRY_KINDS,
    TIERS,
    LoyaltyAccount,
    LoyaltyEarnRule,
    LoyaltyEntry,
    LoyaltySettings,
)
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
from services.orders.models.promotion import CouponCode, OrderDiscount, Promotion
from services.orders.models.recommendation import CoPurchase, CustomerProduct, ProductBuyers

__all__ = [
    "DEAL_STATUSES",
    "ENTRY_KINDS",
    "ORDER_STATUSES",
    "PARTNER_EVENT_KINDS",
    "SALES_CHANNELS",
    "TIERS",
    "Base",
    "CoPurchase",
    "CouponCode",
    "CustomerProduct",
    "Deal",
    "DealStageChange",
    "LoyaltyAccount",
    "LoyaltyEarnRule",
    "LoyaltyEntry",
    "LoyaltySettings",
    "Order",
    "OrderDiscount",
    "OrderLine",
    "PartnerEvent",
    "Payment",
    "PipelineStage",
    "Product",
    "ProductBuyers",
    "Promotion",
    "Refund",
]
