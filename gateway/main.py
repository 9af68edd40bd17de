"""The gateway: ``uvicorn --factory gateway.main:create_app``."""

from typing import Any

from fastapi import APIRouter, FastAPI

from gateway.config import Settings
from shared.app import create_app as create_part_app
from shared.events import asyncapi_document

public = APIRouter(tags=["events"])


@public.get("/asyncapi.json", summary="The AsyncAPI 3.0 document of Rapport's events")
async def asyncapi() -> dict[str, Any]:
    """Every event Rapport publishes on Kafka, generated from the typed event models."""
    return asyncapi_document()


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport API",
        description="The public entry point of Rapport.",
        routers=[public],
        authenticated=False,
    )
