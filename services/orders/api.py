from fastapi import APIRouter

from services.orders.order.endpoints import router as order_router
from services.orders.product.endpoints import router as product_router

routers: list[APIRouter] = [product_router, order_router]
