"""interactions: ``uvicorn --factory services.interactions.main:create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.interactions.api import routers
from services.interactions.careplan.scheduler import care_plan_scheduler_lifespan
from services.interactions.config import Settings
from services.interactions.subscriptions import subscriptions
from services.interactions.ticket.scheduler import sla_scheduler_lifespan
from shared.app import create_app as create_part_app


@asynccontextmanager
async def _schedulers(app: FastAPI) -> AsyncIterator[None]:
    async with sla_scheduler_lifespan(app), care_plan_scheduler_lifespan(app):
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport interactions",
        description="Every touchpoint with a customer: calls, e-mails, chats, visits, notes.",
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[
            {"name": "interactions", "description": "Customer touchpoints"},
            {"name": "tickets", "description": "Support tickets with SLA targets"},
            {"name": "surveys", "description": "CSAT and NPS answers and their figures"},
            {"name": "tasks", "description": "Follow-up tasks, by hand or from care plans"},
            {"name": "care plans", "description": "Rules that create follow-ups on schedule"},
        ],
        lifespan_extension=_schedulers,
    )
