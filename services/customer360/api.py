from fastapi import APIRouter

from services.customer360.customer.endpoints import router as customer_router

routers: list[APIRouter] = [customer_router]
