"""The merged public contract: exactly the routed paths, consistent components, security."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.openapi import PUBLIC_SECURITY
from gateway.routes import PUBLIC_PREFIX
from services.orders import config as orders_config
from services.orders import main as orders_main
from tests.gateway.edge.conftest import Gateway, gateway_settings, running_gateway
from tests.gateway.edge.servers import bound_socket, serve

pytestmark = pytest.mark.asyncio(loop_scope="session")

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolves(document: dict[str, Any], ref: str) -> bool:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


async def fetch(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/openapi.json")
        response.raise_for_status()
        return response.json()


async def merged(gateway: Gateway) -> dict[str, Any]:
    """The gateway's document once every service's part is in it: under load a service may
    answer its first fetch after the gateway's fetch timeout, and the gateway then serves
    what it has and fetches the rest again a few seconds later."""
    async with asyncio.timeout(30):
        while True:
            response = await gateway.client.get("/openapi.json")
            assert response.status_code == 200
            document: dict[str, Any] = response.json()
            if set(document["info"]["x-rapport-services"].values()) == {"ok"}:
                return document
            await asyncio.sleep(0.5)


class TestMergedDocument:
    async def test_it_holds_exactly_the_routed_service_paths_and_the_gateways_own(
        self, full: Gateway, services: dict[str, str]
    ):
        document = await merged(full)
        assert document["openapi"] == "3.1.0"
        table = full.app.state.gateway.routes
        expected: set[str] = set()
        for name, url in services.items():
            for path in (await fetch(url))["paths"]:
                if table.owner(path) == name:
                    expected.add(PUBLIC_PREFIX + path)
        own = full.app.openapi()["paths"]
        expected |= set(own)
        assert set(document["paths"]) == expected
        assert document["info"]["x-rapport-services"] == dict.fromkeys(services, "ok")

    async def test_each_service_contributes_what_it_owns(self, full: Gateway):
        paths = (await merged(full))["paths"]
        assert "/api/v1/customers" in paths
        assert "/api/v1/customers/{customer_id}" in paths
        assert "/api/v1/customers/{customer_id}/features" in paths  # from segmentation
        assert "/api/v1/interactions" in paths
        assert "/api/v1/tasks/{task_id}:complete" in paths
        assert "/api/v1/care-plans/rules" in paths
        assert "/api/v1/campaigns/{campaign_id}:start" in paths
        assert "/api/v1/campaigns/{campaign_id}/report" in paths
        assert "/api/v1/products" in paths
        assert "/api/v1/customers/{customer_id}/recommendations" in paths  # from orders
        assert "/api/v1/deals/{deal_id}/won" in paths
        assert "/api/v1/pipeline/forecast" in paths
        assert "/api/v1/promotions/{promotion_id}/codes:issue" in paths
        assert "/api/v1/coupons/{code}" in paths
        assert "/api/v1/customers/{customer_id}/loyalty" in paths
        assert "/api/v1/loyalty/earn-rules/{currency}" in paths
        assert "/api/v1/admin/api-keys" in paths  # the gateway's own
        assert "/webhooks/{source}" in paths
        assert "/health" in paths  # the gateway's, not a service's
        assert not any(p.startswith("/api/v1/health") for p in paths)
        assert "/openapi.json" not in paths
        assert "/docs" not in paths

    async def test_every_ref_resolves_and_no_component_is_unused_or_duplicated(self, full: Gateway):
        document = await merged(full)
        all_refs = refs(document)
        assert all_refs
        assert [r for r in all_refs if not resolves(document, r)] == []
        schemas = document["components"]["schemas"]
        used = {r.rsplit("/", 1)[1] for r in all_refs if "/schemas/" in r}
        assert set(schemas) == used
        assert "Problem" in schemas  # shared by every service: merged into one
        assert not [name for name in schemas if name.endswith("_Problem")]

    async def test_public_operations_require_a_token_or_an_api_key(self, full: Gateway):
        document = await merged(full)
        schemes = document["components"]["securitySchemes"]
        assert schemes["bearerAuth"] == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": schemes["bearerAuth"]["description"],
        }
        assert schemes["apiKeyAuth"]["in"] == "header"
        assert schemes["apiKeyAuth"]["name"] == "X-API-Key"
        assert set(schemes) == {"bearerAuth", "apiKeyAuth"}
        ids = []
        for path, _method, operation in operations(document):
            ids.append(operation.get("operationId"))
            if path.startswith("/api/v1/campaign-links"):
                assert "security" not in operation, path  # signed links, no credentials
            elif path.startswith("/api/v1/"):
                assert operation["security"] == PUBLIC_SECURITY, path
            else:
                assert "security" not in operation, path
        assert len(ids) == len(set(ids))

    async def test_swagger_ui_shows_the_merged_document(self, full: Gateway):
        response = await full.client.get("/docs")
        assert response.status_code == 200
        assert "swagger-ui" in response.text
        assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
        assert (await full.client.get("/redoc")).status_code == 404

    async def test_a_service_that_starts_after_the_gateway_appears(self, make_settings, services):
        sock = bound_socket()  # reserved, not yet listening: connections are refused
        orders_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = gateway_settings(make_settings, **{**services, "orders": orders_url})
        async with running_gateway(settings) as gateway:
            before = (await gateway.client.get("/openapi.json")).json()
            assert "/api/v1/products" not in before["paths"]
            assert before["info"]["x-rapport-services"]["orders"] == "unavailable"
            gateway.app.state.gateway.openapi.missing_retry_s = 0.0
            async with serve(
                orders_main.create_app(make_settings(orders_config.Settings)), sock=sock
            ):
                await asyncio.sleep(0)
                after = (await gateway.client.get("/openapi.json")).json()
            assert "/api/v1/products" in after["paths"]
            assert after["info"]["x-rapport-services"]["orders"] == "ok"
