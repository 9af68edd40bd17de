"""orders: ``uvicorn --factory services.orders.main:create_app``."""

from fastapi import FastAPI

from services.orders.api import routers
from services.orders.config import Settings
from services.orders.subscriptions import subscriptions
from shared.app import create_app as create_part_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport orders",
        description="Products, orders, payments and the sales pipeline.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[{"name": "products", "description": "The product catalogue"}],
    )
