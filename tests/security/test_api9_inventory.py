"""OWASP API9:2023 — Improper Inventory Management.

The merged OpenAPI document the gateway serves is the inventory, and it must match what is
actually served:

* every operation a service serves publicly is reachable through the gateway — its path is
  owned by that service in the route table (``gateway/routes.py``) — and is in the merged
  document; no route is hidden from the schema;
* every ``/api/v1`` path of the merged document is routed to the part that serves it, and the
  gateway's own ``/api/v1`` routes are marked local in the table (else the edge would proxy
  them away);
* operational endpoints of the services (``/health``, ``/ready``, ``/metrics``) and other API
  versions are not reachable through the public prefix.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from gateway.routes import LOCAL, PUBLIC_PREFIX
from tests.security.conftest import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPERATIONAL = {"/health", "/ready", "/metrics"}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def served(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every API route of ``app``, documented or not (FastAPI keeps
    included routers whole; their routes are listed by ``effective_route_contexts``)."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            found |= {(m, route.path) for m in (route.methods or set()) & METHODS}
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    found |= {(m, context.path) for m in set(context.methods or ()) & METHODS}
    assert found, "no routes found: has FastAPI's router changed shape?"
    return found


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


async def merged(stack: Stack) -> dict[str, Any]:
    response = await stack.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert set(document["info"]["x-rapport-services"].values()) == {"ok"}
    return document


class TestServicesAgainstTheInventory:
    async def test_no_service_route_is_hidden_from_its_schema(self, stack: Stack):
        hidden = {
            name: sorted(served(app) - documented(app.openapi()))
            for name, app in stack.apps.items()
        }
        assert {k: v for k, v in hidden.items() if v} == {}

    async def test_every_public_service_operation_is_routed_to_it_and_in_the_merged_spec(
        self, stack: Stack
    ):
        table = stack.gateway.app.state.gateway.routes
        spec = documented(await merged(stack))
        misrouted, missing = {}, []
        for name, app in stack.apps.items():
            for method, path in sorted(served(app)):
                if path in OPERATIONAL:
                    continue
                owner = table.owner(path)
                if owner != name:
                    misrouted[f"{name}: {method} {path}"] = owner
                elif (method, PUBLIC_PREFIX + path) not in spec:
                    missing.append(f"{method} {PUBLIC_PREFIX}{path}")
        assert misrouted == {}
        assert missing == []


class TestTheInventoryAgainstWhatIsServed:
    async def test_every_api_path_in_the_merged_spec_is_routed_to_the_part_serving_it(
        self, stack: Stack
    ):
        table = stack.gateway.app.state.gateway.routes
        serving: dict[tuple[str, str], str] = {}
        for name, app in stack.apps.items():
            for method, path in served(app):
                serving[(method, PUBLIC_PREFIX + path)] = name
        for method, path in served(stack.gateway.app):
            serving[(method, path)] = LOCAL
        unrouted = {}
        for method, path in sorted(documented(await merged(stack))):
            if not path.startswith(PUBLIC_PREFIX + "/"):
                continue
            owner = table.owner(path.removeprefix(PUBLIC_PREFIX))
            if serving.get((method, path)) != owner:
                unrouted[f"{method} {path}"] = (owner, serving.get((method, path)))
        assert unrouted == {}

    async def test_the_gateways_own_api_routes_are_local_in_the_table(self, stack: Stack):
        table = stack.gateway.app.state.gateway.routes
        own = {p for _, p in served(stack.gateway.app) if p.startswith(PUBLIC_PREFIX + "/")}
        assert own  # admin keys, webhook sources, endpoints
        assert {p: table.owner(p.removeprefix(PUBLIC_PREFIX)) for p in own} == dict.fromkeys(
            own, LOCAL
        )

    async def test_the_merged_spec_holds_nothing_outside_the_public_surface(self, stack: Stack):
        paths = set((await merged(stack))["paths"])
        outside = {p for p in paths if not p.startswith((PUBLIC_PREFIX + "/", "/webhooks/"))}
        # The gateway's own operations, documented as such (see the report on /metrics).
        assert outside == {"/health", "/ready", "/metrics", "/asyncapi.json"}


class TestNothingElseIsReachable:
    @pytest.mark.parametrize(
        "path",
        [
            *(PUBLIC_PREFIX + p for p in sorted(OPERATIONAL)),
            "/api/v1/openapi.json",
            "/api/v1/docs",
            "/api/v2/customers",
            "/api/v0/customers",
            "/api/customers",
            "/customers",
        ],
    )
    async def test_operational_and_unversioned_paths_are_404(self, stack: Stack, path: str):
        response = await stack.client.get(path, headers=stack.auth("admin"))
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
