"""segmentation: ``uvicorn --factory services.segmentation.main:create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.segmentation.analytics.scheduler import analytics_scheduler_lifespan
from services.segmentation.api import routers
from services.segmentation.config import Settings
from services.segmentation.segments.scheduler import membership_scheduler_lifespan
from services.segmentation.subscriptions import subscriptions
from shared.app import create_app as create_part_app


@asynccontextmanager
async def _schedulers(app: FastAPI) -> AsyncIterator[None]:
    async with analytics_scheduler_lifespan(app), membership_scheduler_lifespan(app):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport segmentation",
        description="Customer features, segments, RFM, lifecycle stage, CLV and churn risk.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[
            {"name": "features", "description": "What is known about a customer, from events"},
            {"name": "segments", "description": "Rule-based and hand-picked customer segments"},
            {
                "name": "analytics",
                "description": "RFM scores and groups, lifecycle stage, CLV and churn risk",
            },
        ],
        lifespan_extension=_schedulers,
    )
