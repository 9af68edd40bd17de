from fastapi import APIRouter

from services.orders.deal.endpoints import deals_router, stages_router
from services.orders.loyalty.endpoints import customer_router as customer_loyalty_router
from services.orders.loyalty.endpoints import router as loyalty_router
from services.orders.order.endpoints import router as order_router
from services.orders.partner.endpoints import router as partner_router
from services.orders.product.endpoints import router as product_router
from services.orders.promotion.endpoints import coupons_router, promotions_router
from services.orders.recommendation.endpoints import router as recommendation_router

routers: list[APIRouter] = [
    product_router,
    # before the order routes: /orders/partner-events is not /orders/{order_id}
    partner_router,
    order_router,
    stages_router,
    deals_router,
    recommendation_router,
    promotions_router,
    coupons_router,
    loyalty_router,
    customer_loyalty_router,
]
