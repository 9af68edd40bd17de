"""customer360: ``uvicorn --factory services.customer360.main:create_app``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.customer360.api import routers
from services.customer360.config import Settings
from services.customer360.imports.service import fail_interrupted
from services.customer360.subscriptions import subscriptions
from shared.app import create_app as create_part_app

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Best effort: the service starts (and /ready says why it is not ready) even when the
    # database is down; stale imports are then failed at the next start instead.
    try:
        async with app.state.database.session() as session:
            await fail_interrupted(session)
    except Exception as exc:  # any database error: start anyway
        log.warning("could not mark interrupted imports failed: %s", exc)
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_part_app(
        settings or Settings(),
        title="Rapport customer360",
        description="Unified customer profiles: identity, attributes, consent, 360 view.",
        routers=routers,
        subscriptions=subscriptions,
        lifespan_extension=_lifespan,
        upload_prefixes=("/imports/",),
        openapi_tags=[{"name": "customers", "description": "Customer profiles"}],
    )
