from fastapi import APIRouter

from services.customer360.customer.endpoints import router as customer_router
from services.customer360.imports.endpoints import router as import_router
from services.customer360.search.endpoints import router as search_router

routers: list[APIRouter] = [customer_router, search_router, import_router]
