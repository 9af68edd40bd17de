from fastapi import APIRouter

from services.orders.product.endpoints import router as product_router

routers: list[APIRouter] = [product_router]
