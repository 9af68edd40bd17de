"""customer360: ``uvicorn --factory services.customer360.main:create_app``."""

from fastapi import FastAPI

from services.customer360.api import routers
from services.customer360.config import Settings
from services.customer360.subscriptions import subscriptions
from shared.app import create_app as create_part_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport customer360",
        description="Unified customer profiles: identity, attributes, consent, 360 view.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[{"name": "customers", "description": "Customer profiles"}],
    )
