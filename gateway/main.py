"""The gateway: ``uvicorn --factory gateway.main:create_app``.

The only public entry point. Composition, outermost first::

    RequestContextMiddleware (shared: request id, body limit, metrics, access log)
    └─ CORSMiddleware          (answers preflights; adds CORS fields to every answer)
       └─ EdgeMiddleware       (/api/v1: authenticate, rate-limit, proxy or pass on)
          └─ WebhookFrontDoor  (POST /webhooks/{source}: verify, store, answer — pure ASGI)
             └─ FastAPI routes (admin, webhooks, /openapi.json, /docs, health…)

FastAPI's own ``/openapi.json`` and ``/docs`` are removed: they would describe the gateway
alone, while the public contract is the merged document (:mod:`gateway.openapi`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway import openapi
from gateway.auth import admin as auth_admin
from gateway.config import Settings
from gateway.edge import EdgeMiddleware
from gateway.headers import SecurityHeadersMiddleware
from gateway.outbound import endpoints as outbound_endpoints
from gateway.routes import PUBLIC_PREFIX
from gateway.state import StateSlot, gateway_lifespan
from gateway.subscriptions import subscriptions
from gateway.webhooks import admin as webhooks_admin
from gateway.webhooks import endpoints as webhooks_endpoints
from gateway.webhooks.frontdoor import WebhookFrontDoor
from shared.app import create_app as create_part_app
from shared.events import asyncapi_document

__all__ = ["create_app"]

public = APIRouter(tags=["events"])

#: Request fields a browser may send cross-origin, and response fields it may read.
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-API-Key",
    "X-Request-ID",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "traceparent",
    "tracestate",
]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "ETag",
    "Location",
]
_FASTAPI_DOCS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


@public.get("/asyncapi.json", summary="The AsyncAPI 3.0 document of Rapport's events")
async def asyncapi() -> dict[str, Any]:
    """Every event Rapport publishes on Kafka, generated from the typed event models."""
    return asyncapi_document()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    slot = StateSlot()
    app = create_part_app(
        settings,
        upload_prefixes=(f"{PUBLIC_PREFIX}/imports/",),
        title="Rapport API",
        description=(
            "The public API of Rapport. Every `/api/v1` operation needs a bearer token "
            "(JWT) or an API key (`X-API-Key`); answers carry `RateLimit` and "
            "`RateLimit-Policy` fields, and errors are RFC 9457 problem details."
        ),
        routers=[
            public,
            openapi.router,
            auth_admin.router,
            webhooks_endpoints.router,
            webhooks_admin.router,
            outbound_endpoints.router,
        ],
        subscriptions=subscriptions,
        authenticated=False,
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
                allow_headers=CORS_ALLOW_HEADERS,
                expose_headers=CORS_EXPOSE_HEADERS,
                max_age=600,
            ),
            Middleware(EdgeMiddleware, slot=slot),
            *([Middleware(WebhookFrontDoor, slot=slot)] if settings.webhook_fast_path else []),
        ],
        lifespan_extension=gateway_lifespan(slot),
    )
    # Drop FastAPI's single-app docs; gateway.openapi serves the merged ones at these paths.
    app.router.routes[:] = [
        r
        for r in app.router.routes
        if isinstance(r, APIRoute) or getattr(r, "path", None) not in _FASTAPI_DOCS
    ]
    app.openapi_url = app.docs_url = app.redoc_url = None
    return app
