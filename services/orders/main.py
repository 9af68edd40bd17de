"""orders: ``uvicorn --factory services.orders.main:create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.orders.api import routers
from services.orders.config import Settings
from services.orders.partner import handlers as partner_handlers
from services.orders.partner.customers import CustomerResolver
from services.orders.periodic import periodic_lifespan
from services.orders.subscriptions import subscriptions
from shared.app import create_app as create_part_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def partner_client(app: FastAPI) -> AsyncIterator[None]:
        # ``app.state.customer360_transport`` routes the calls in-process in tests.
        resolver = CustomerResolver(settings, getattr(app.state, "customer360_transport", None))
        partner_handlers.install(resolver)
        try:
            async with periodic_lifespan(app):
                yield
        finally:
            partner_handlers.uninstall(resolver)
            await resolver.close()

    return create_part_app(
        settings,
        title="Rapport orders",
        description="Products, orders, payments, partner orders, the sales pipeline, "
        "forecasts, recommendations, coupons and loyalty.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[
            {"name": "products", "description": "The product catalogue"},
            {"name": "orders", "description": "Orders, payments and refunds"},
            {"name": "deals", "description": "Deals (opportunities) moving through the pipeline"},
            {"name": "pipeline", "description": "Pipeline stages, summary and forecast"},
            {"name": "recommendations", "description": "What a customer may want next"},
            {"name": "promotions", "description": "Promotions and coupon codes"},
            {"name": "loyalty", "description": "Loyalty points, earn rules and tiers"},
        ],
        lifespan_extension=partner_client,
    )
