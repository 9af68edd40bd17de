"""segmentation: ``uvicorn --factory services.segmentation.main:create_app``."""

from fastapi import FastAPI

from services.segmentation.analytics.scheduler import analytics_scheduler_lifespan
from services.segmentation.api import routers
from services.segmentation.config import Settings
from services.segmentation.subscriptions import subscriptions
from shared.app import create_app as create_part_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport segmentation",
        description="Customer features, segments, RFM, lifecycle stage, CLV and churn risk.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[
            {"name": "features", "description": "What is known about a customer, from events"},
            {
                "name": "analytics",
                "description": "RFM scores and groups, lifecycle stage, CLV and churn risk",
            },
        ],
        lifespan_extension=analytics_scheduler_lifespan,
    )
