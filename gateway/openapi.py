"""One public contract: the services' OpenAPI documents merged behind ``/api/v1``.

Frontend teams read one document, so it must say exactly what the gateway serves: every
route that exists, none that doesn't. Hence the route table decides (the same table the edge
routes with): a service's path ``P`` appears as ``/api/v1{P}`` only when the table sends
``P`` to that service; the gateway's own routes (admin, webhooks, health…) come from its
FastAPI app. Services' operational paths (``/health``, ``/metrics``) are thus left out.

Components: the first document to define a name keeps it; an identical definition later is
merged into it; a different one is renamed ``<service>_<Name>`` and every ``$ref`` of that
service's document rewritten (to a fixpoint, since renaming one schema changes those that
refer to it). Components no kept path reaches are dropped. Security: the services'
internal-token scheme is an implementation detail; the public document declares
``bearerAuth`` (JWT) and ``apiKeyAuth`` (``X-API-Key``), required by every ``/api/v1``
operation.

Documents are fetched from ``<upstream>/openapi.json`` with the gateway's pooled client: in
the background from startup (with retry, until every service answered once), and again on
demand when older than ``ttl_s`` — or ``missing_retry_s`` for a service not seen yet, so a
service that starts after the gateway appears within seconds. A service that fails to answer
keeps its last good document; the merged document lists each service's state under
``info.x-rapport-services``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from gateway.routes import LOCAL, PUBLIC_PREFIX, RouteTable

__all__ = [
    "PUBLIC_SECURITY",
    "SECURITY_SCHEMES",
    "OpenAPIMerger",
    "merge_documents",
    "router",
]

logger = logging.getLogger(__name__)

JSONDict = dict[str, Any]

SECURITY_SCHEMES: JSONDict = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token (JWT) from Rapport's identity provider.",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A partner API key (`rpk_…`), issued by an admin.",
    },
}
#: Either scheme authenticates an /api/v1 operation.
PUBLIC_SECURITY: list[JSONDict] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_REF_PREFIX = "#/components/"


# --- merging (pure) -----------------------------------------------------------------------


def _walk_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)


def _split_ref(ref: str) -> tuple[str, str] | None:
    if not ref.startswith(_REF_PREFIX):
        return None
    section, _, name = ref[len(_REF_PREFIX) :].partition("/")
    return (section, name) if name and "/" not in name else None


def _rewrite(node: Any, renames: Mapping[tuple[str, str], str]) -> Any:
    """A deep copy of ``node`` with ``$ref``s to renamed components rewritten."""
    if isinstance(node, dict):
        out: JSONDict = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and renames:
                target = _split_ref(value)
                if target is not None and target in renames:
                    value = f"{_REF_PREFIX}{target[0]}/{renames[target]}"
                out[key] = value
            else:
                out[key] = _rewrite(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite(item, renames) for item in node]
    return node


def _canonical(node: Any) -> str:
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def _merge_components(
    merged: dict[str, JSONDict], incoming: Mapping[str, JSONDict], prefix: str
) -> dict[tuple[str, str], str]:
    """Add ``incoming`` components to ``merged``; returns the renames it needed."""
    renames: dict[tuple[str, str], str] = {}
    taken = {(s, n) for s, items in merged.items() for n in items}
    taken |= {(s, n) for s, items in incoming.items() for n in items}
    changed = True
    while changed:  # renaming one component can make those referring to it differ too
        changed = False
        for section, items in incoming.items():
            for name, value in items.items():
                if (section, name) in renames:
                    continue
                existing = merged.get(section, {}).get(name)
                if existing is None or _canonical(existing) == _canonical(_rewrite(value, renames)):
                    continue
                candidate, n = f"{prefix}_{name}", 1
                while (section, candidate) in taken:
                    n += 1
                    candidate = f"{prefix}_{name}_{n}"
                taken.add((section, candidate))
                renames[(section, name)] = candidate
                changed = True
    for section, items in incoming.items():
        target = merged.setdefault(section, {})
        for name, value in items.items():
            new_name = renames.get((section, name), name)
            if new_name not in target:
                target[new_name] = _rewrite(value, renames)
    return renames


def _public_operations(path_item: JSONDict, secured: bool) -> JSONDict:
    out = dict(path_item)
    for method, operation in path_item.items():
        if method not in _METHODS or not isinstance(operation, dict):
            continue
        operation = dict(operation)
        if secured:
            operation["security"] = PUBLIC_SECURITY
        else:
            operation.pop("security", None)  # it named a scheme the document does not keep
        out[method] = operation
    return out


def _prune(components: dict[str, JSONDict], paths: JSONDict) -> dict[str, JSONDict]:
    """Only the components the paths reach (transitively)."""
    reached: set[tuple[str, str]] = set()
    pending = [t for t in map(_split_ref, _walk_refs(paths)) if t is not None]
    while pending:
        target = pending.pop()
        if target in reached:
            continue
        reached.add(target)
        value = components.get(target[0], {}).get(target[1])
        if value is not None:
            pending.extend(t for t in map(_split_ref, _walk_refs(value)) if t is not None)
    pruned: dict[str, JSONDict] = {}
    for section, items in components.items():
        kept = {n: v for n, v in items.items() if (section, n) in reached}
        if kept:
            pruned[section] = dict(sorted(kept.items()))
    return pruned


def merge_documents(
    gateway: JSONDict, services: Mapping[str, JSONDict | None], routes: RouteTable
) -> JSONDict:
    """The public document: ``gateway`` (the gateway app's own OpenAPI) plus each service's
    document (``None``: not fetched yet), filtered through ``routes``."""
    components: dict[str, JSONDict] = {}
    paths: JSONDict = {}
    tags: dict[str, JSONDict] = {}
    operation_ids: set[str] = set()

    def add(source: str, document: JSONDict, keep: Callable[[str], str | None]) -> None:
        incoming = {
            section: items
            for section, items in (document.get("components") or {}).items()
            if section != "securitySchemes" and isinstance(items, dict)
        }
        renames = _merge_components(components, incoming, source)
        for path, item in (document.get("paths") or {}).items():
            public = keep(path)
            if public is None or public in paths:
                continue
            route = routes.match(public[len(PUBLIC_PREFIX) :])
            secured = public.startswith(PUBLIC_PREFIX) and not (route is not None and route.public)
            item = _public_operations(_rewrite(item, renames), secured)
            for method, operation in item.items():
                if method in _METHODS and isinstance(operation, dict):
                    op_id = operation.get("operationId")
                    if isinstance(op_id, str):
                        if op_id in operation_ids:
                            op_id = operation["operationId"] = f"{source}_{op_id}"
                        operation_ids.add(op_id)
            paths[public] = item
        for tag in document.get("tags") or []:
            if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                tags.setdefault(tag["name"], tag)

    def keep_local(path: str) -> str | None:
        if path.startswith(PUBLIC_PREFIX + "/"):
            return path if routes.owner(path[len(PUBLIC_PREFIX) :]) in (LOCAL, None) else None
        return path

    add(LOCAL, gateway, keep_local)
    states: dict[str, str] = {}
    for service, service_document in services.items():
        states[service] = "ok" if service_document is not None else "unavailable"
        if service_document is None:
            continue

        def keep_routed(path: str, service: str = service) -> str | None:
            return PUBLIC_PREFIX + path if routes.owner(path) == service else None

        add(service, service_document, keep_routed)

    info = dict(gateway.get("info") or {"title": "Rapport API", "version": "0.1.0"})
    info["x-rapport-services"] = states
    pruned = _prune(components, paths)
    pruned["securitySchemes"] = SECURITY_SCHEMES
    document: JSONDict = {
        "openapi": "3.1.0",
        "info": info,
        "paths": dict(sorted(paths.items())),
        "components": pruned,
    }
    if tags:
        document["tags"] = list(tags.values())
    return document


# --- fetching and caching -----------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    name: str
    url: str
    document: JSONDict | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")


class OpenAPIMerger:
    """Fetches, caches and merges the documents (see the module docstring)."""

    def __init__(
        self,
        *,
        routes: RouteTable,
        upstreams: Mapping[str, str],
        session: Callable[[], aiohttp.ClientSession],
        local: Callable[[], JSONDict],
        ttl_s: float = 60.0,
        missing_retry_s: float = 3.0,
        fetch_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = routes
        self.sources = {
            name: _Source(name, f"{upstreams[name].rstrip('/')}/openapi.json")
            for name in routes.upstreams
        }
        self._session = session
        self._local = local
        self.ttl_s = ttl_s
        self.missing_retry_s = missing_retry_s
        self.fetch_timeout = aiohttp.ClientTimeout(total=fetch_timeout_s)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._rendered: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Fetch every document in the background, retrying until each answered once."""
        self._task = asyncio.create_task(self._warm_up(), name="openapi-warm-up")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _warm_up(self) -> None:
        delay = 0.5
        while True:
            missing = [s for s in self.sources.values() if s.document is None]
            if not missing:
                return
            async with self._lock:
                if any(await asyncio.gather(*(self._fetch(s) for s in missing))):
                    self._rendered = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _stale(self, source: _Source, now: float) -> bool:
        if source.document is None:
            return now - source.attempted_at >= self.missing_retry_s
        return now - source.attempted_at >= self.ttl_s

    async def _fetch(self, source: _Source) -> bool:
        """Fetch one document; ``True`` when it changed."""
        source.attempted_at = self._clock()
        try:
            async with self._session().get(source.url, timeout=self.fetch_timeout) as response:
                if response.status != 200:
                    raise ValueError(f"answered {response.status}")
                document = await response.json(content_type=None)
            if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
                raise ValueError("not an OpenAPI document")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.info("cannot fetch the OpenAPI document of %s: %s", source.name, exc)
            return False
        source.fetched_at = source.attempted_at
        changed = document != source.document
        source.document = document
        return changed

    async def document(self) -> JSONDict:
        return json.loads(await self.rendered())  # type: ignore[no-any-return]

    async def rendered(self) -> bytes:
        """The merged document as JSON, refreshing stale sources first."""
        now = self._clock()
        stale = [s for s in self.sources.values() if self._stale(s, now)]
        if stale or self._rendered is None:
            async with self._lock:
                stale = [s for s in self.sources.values() if self._stale(s, self._clock())]
                if stale and any(await asyncio.gather(*(self._fetch(s) for s in stale))):
                    self._rendered = None
                if self._rendered is None:
                    merged = merge_documents(
                        self._local(),
                        {name: s.document for name, s in self.sources.items()},
                        self.routes,
                    )
                    self._rendered = json.dumps(merged, separators=(",", ":")).encode()
        return self._rendered

    def invalidate(self) -> None:
        """Refetch every document on the next request."""
        for source in self.sources.values():
            source.attempted_at = float("-inf")
        self._rendered = None


# --- endpoints ----------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json", summary="The public OpenAPI 3.1 document (every service merged)")
async def openapi_document(request: Request) -> Response:
    """Every public operation of Rapport, as one document: the services' operations under
    ``/api/v1`` and the gateway's own (admin, webhooks, operations)."""
    merger: OpenAPIMerger = request.app.state.gateway.openapi
    return Response(await merger.rendered(), media_type="application/json")


@router.get("/docs", summary="Swagger UI for the public OpenAPI document")
async def swagger_ui() -> HTMLResponse:
    """Interactive documentation of ``/openapi.json``; authorize with a bearer token or an
    API key to try operations."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Rapport API",
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
    )
