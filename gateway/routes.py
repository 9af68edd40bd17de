"""The route table: which part of Rapport owns which public path.

Why a table of data and not code: the public surface grows service by service, and the same
table drives three things that must never disagree — where the edge sends a request, which
upstream paths the merged OpenAPI document keeps, and the metrics label of a proxied
request. Adding ``/api/v1/tickets`` to interactions is one line here.

A pattern is matched segment by segment against the public path *without* ``/api/v1``, as a
prefix: ``/customers`` matches ``/customers``, ``/customers/`` and ``/customers/42/notes`` but
not ``/customersx``; ``*`` matches exactly one segment. When several patterns match, the most
specific wins (more segments first; at the first difference a literal beats ``*``), whatever
the order they are written in — they are written most specific first anyway, for readers.
The upstream path is the public path without ``/api/v1``.

``LOCAL`` routes (``/admin``) and public paths no pattern matches are served by the
gateway's own FastAPI routes (which answer 404 for what they do not know).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["LOCAL", "PUBLIC_PREFIX", "ROUTES", "Route", "RouteTable"]

#: Every proxied or authenticated public path starts with this.
PUBLIC_PREFIX = "/api/v1"
#: The upstream name of routes served by the gateway itself.
LOCAL = "gateway"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Route:
    """``pattern`` (e.g. ``/customers/*/features``) is owned by ``upstream`` (a service
    name with a ``<name>_url`` setting, or :data:`LOCAL`)."""

    pattern: str
    upstream: str
    #: Reached without credentials and forwarded without an internal token: only for
    #: paths whose requests carry their own proof (signed campaign tracking links).
    public: bool = False
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: Route template for metrics and logs (``scope["route"].path``), like Starlette's.
    path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pattern.startswith("/") or self.pattern.endswith("/"):
            raise ValueError(f"route pattern {self.pattern!r} must start and not end with '/'")
        segments = tuple(self.pattern[1:].split("/"))
        if any(not s for s in segments) or segments[0] == WILDCARD:
            raise ValueError(f"route pattern {self.pattern!r} has an empty or leading '*' segment")
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "path", f"{PUBLIC_PREFIX}{self.pattern}/…")

    @property
    def local(self) -> bool:
        return self.upstream == LOCAL

    def matches(self, segments: Sequence[str]) -> bool:
        """``segments``: the path split on ``/`` without the leading empty string."""
        if len(segments) < len(self.segments):
            return False
        for want, got in zip(self.segments, segments, strict=False):
            if want != got and want != WILDCARD:
                return False
        return True

    @property
    def specificity(self) -> tuple[int, tuple[bool, ...]]:
        """Sort key: longer first, then literals before wildcards, position by position."""
        return (-len(self.segments), tuple(s == WILDCARD for s in self.segments))


#: The public API, by owner. Most specific first.
ROUTES: tuple[Route, ...] = (
    # What segmentation computes about a customer lives under the customer's path.
    Route("/customers/*/features", "segmentation"),
    Route("/customers/*/segments", "segmentation"),
    Route("/customers/*/scores", "segmentation"),
    Route("/analytics", "segmentation"),
    Route("/analytics:recompute", "segmentation"),
    Route("/segments", "segmentation"),
    Route("/segments:preview", "segmentation"),
    Route("/customers", "customer360"),
    Route("/customers:resolve", "customer360"),
    Route("/customers:search", "customer360"),
    Route("/custom-fields", "customer360"),
    Route("/imports", "customer360"),
    Route("/interactions", "interactions"),
    Route("/interactions:batch", "interactions"),
    Route("/tickets", "interactions"),
    Route("/surveys", "interactions"),
    Route("/tasks", "interactions"),
    Route("/care-plans", "interactions"),
    Route("/campaigns", "interactions"),
    Route("/campaign-links", "interactions", public=True),
    # What orders learns from purchases, under the customer's path too.
    Route("/customers/*/recommendations", "orders"),
    Route("/customers/*/loyalty", "orders"),
    Route("/products", "orders"),
    Route("/orders", "orders"),
    Route("/deals", "orders"),
    Route("/pipeline", "orders"),
    Route("/promotions", "orders"),
    Route("/coupons", "orders"),
    Route("/loyalty", "orders"),
    Route("/admin", LOCAL),
    Route("/webhook-endpoints", LOCAL),
)


class RouteTable:
    """The compiled table: routes indexed by their first (always literal) segment."""

    def __init__(self, routes: Iterable[Route] = ROUTES) -> None:
        self.declared: tuple[Route, ...] = tuple(routes)
        ordered = sorted(
            self.declared, key=lambda r: r.specificity
        )  # stable: ties keep their order
        seen: dict[tuple[str, ...], Route] = {}
        for route in ordered:
            if route.segments in seen:
                raise ValueError(f"routes {seen[route.segments]} and {route} overlap exactly")
            seen[route.segments] = route
        self.routes: tuple[Route, ...] = tuple(ordered)
        self._by_head: dict[str, tuple[Route, ...]] = {}
        for route in ordered:
            head = route.segments[0]
            self._by_head[head] = (*self._by_head.get(head, ()), route)

    def match(self, path: str) -> Route | None:
        """The route owning ``path`` (public path without ``/api/v1``, e.g. ``/customers/7``),
        or ``None`` when no pattern matches."""
        segments = path[1:].split("/")
        candidates = self._by_head.get(segments[0])
        if candidates is None:
            return None
        for route in candidates:
            if route.matches(segments):
                return route
        return None

    def owner(self, path: str) -> str | None:
        """The upstream owning ``path`` (:data:`LOCAL` or a service), or ``None``."""
        route = self.match(path)
        return route.upstream if route is not None else None

    @property
    def upstreams(self) -> tuple[str, ...]:
        """The services the table sends requests to, in declared order, without duplicates."""
        return tuple(dict.fromkeys(r.upstream for r in self.declared if not r.local))
