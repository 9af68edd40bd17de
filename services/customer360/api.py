from fastapi import APIRouter

from services.customer360.custom_fields.endpoints import router as custom_fields_router
from services.customer360.customer.endpoints import router as customer_router
from services.customer360.identity.endpoints import router as identity_router
from services.customer360.imports.endpoints import router as import_router
from services.customer360.privacy.endpoints import router as privacy_router
from services.customer360.search.endpoints import router as search_router
from services.customer360.view.endpoints import router as view_router

routers: list[APIRouter] = [
    search_router,
    identity_router,
    customer_router,
    custom_fields_router,
    view_router,
    privacy_router,
    import_router,
]
