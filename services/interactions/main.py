"""interactions: ``uvicorn --factory services.interactions.main:create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.interactions.api import routers
from services.interactions.campaign import handlers as campaign_handlers
from services.interactions.campaign.consent import ConsentClient
from services.interactions.campaign.links import router as campaign_links_router
from services.interactions.campaign.segments import SegmentDirectory
from services.interactions.campaign.sender import campaign_sender_lifespan
from services.interactions.campaign.tracking import Tracker
from services.interactions.careplan.scheduler import care_plan_scheduler_lifespan
from services.interactions.config import Settings
from services.interactions.interaction import partners, webhooks
from services.interactions.interaction.customers import CustomerResolver, use_resolver
from services.interactions.subscriptions import subscriptions
from services.interactions.ticket.scheduler import sla_scheduler_lifespan
from shared.app import create_app as create_part_app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        async with (
            sla_scheduler_lifespan(app),
            care_plan_scheduler_lifespan(app),
            campaign_sender_lifespan(app),
        ):
            yield
    finally:
        await app.state.customer_resolver.close()
        await app.state.campaign_consent.close()
        await app.state.campaign_segments.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_part_app(
        settings,
        title="Rapport interactions",
        description="Every touchpoint with a customer: calls, e-mails, chats, social, visits, "
        "notes, web/app behaviour, and partner webhooks mapped to them.\n\n"
        "## Partner webhook formats\n\n" + (partners.__doc__ or ""),
        routers=routers,
        subscriptions=subscriptions,
        openapi_tags=[
            {"name": "interactions", "description": "Customer touchpoints"},
            {"name": "tickets", "description": "Support tickets with SLA targets"},
            {"name": "surveys", "description": "CSAT and NPS answers and their figures"},
            {"name": "tasks", "description": "Follow-up tasks, by hand or from care plans"},
            {"name": "care plans", "description": "Rules that create follow-ups on schedule"},
            {
                "name": "campaigns",
                "description": "Marketing campaigns to a segment or a list, by e-mail, SMS or "
                "a partner channel: consent-aware, capped, quiet at night, measured",
            },
        ],
        lifespan_extension=_lifespan,
    )
    # Partner webhooks name people by e-mail/phone: the handler asks customer360 (its HTTP
    # client opens on first use, in the running loop, and closes with the app).
    resolver = CustomerResolver(
        settings.customer360_url,
        settings.internal_token_secret,
        timeout_s=settings.customer360_timeout_s,
    )
    # Tracking links are followed by mail clients, with no internal token: this router is
    # the one without it (each link carries its own HMAC signature instead).
    app.include_router(campaign_links_router)
    app.state.customer_resolver = resolver
    # Unsubscribes withdraw consent in customer360 (its public API, an internal token).
    app.state.campaign_consent = ConsentClient(
        settings.customer360_url,
        settings.internal_token_secret,
        timeout_s=settings.customer360_timeout_s,
    )
    # A campaign's segment must exist: segmentation's public API says (an internal token).
    app.state.campaign_segments = SegmentDirectory(
        settings.segmentation_url,
        settings.internal_token_secret,
        timeout_s=settings.segmentation_timeout_s,
    )
    app.state.campaign_tracker = Tracker(
        settings.campaign_tracking_base_url, settings.tracking_secret
    )
    use_resolver(resolver)
    webhooks.use_formats(settings.webhook_formats)
    campaign_handlers.use_settings(settings)
    return app
