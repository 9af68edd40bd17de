"""interactions: ``uvicorn --factory services.interactions.main:create_app``."""

from fastapi import FastAPI

from services.interactions.api import routers
from services.interactions.config import Settings
from services.interactions.subscriptions import subscriptions
from services.interactions.ticket.scheduler import sla_scheduler_lifespan
from shared.app import create_app as create_part_app


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
        ],
        lifespan_extension=sla_scheduler_lifespan,
    )
