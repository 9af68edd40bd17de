from fastapi import APIRouter

from services.customer360.custom_fields.endpoints import router as custom_fields_router
from services.customer360.customer.endpoints import router as customer_router
from services.customer360.identity.endpoints import router as identity_router
from services.customer360.view.endpoints import router as view_router

routers: list[APIRouter] = [identity_router, customer_router, custom_fields_router, view_router]
