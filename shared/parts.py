"""The parts of Rapport, named by import path only.

This is the composition root's table: the CLI starts each part as its own process
(``uvicorn --factory <app>``) and Alembic loads each part's metadata from it. ``shared``
itself never imports a part; these are strings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["PARTS", "Part", "load", "part"]


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    #: ``module:factory`` returning the FastAPI app.
    app: str
    #: ``module:Settings`` class of the part.
    settings: str
    #: ``module:Base`` whose metadata Alembic migrates.
    base: str
    port: int

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"


PARTS: tuple[Part, ...] = (
    Part(
        "gateway", "gateway.main:create_app", "gateway.config:Settings", "gateway.models:Base", 8000
    ),
    *(
        Part(
            name,
            f"services.{name}.main:create_app",
            f"services.{name}.config:Settings",
            f"services.{name}.models:Base",
            port,
        )
        for name, port in (
            ("customer360", 8001),
            ("interactions", 8002),
            ("orders", 8003),
            ("segmentation", 8004),
        )
    ),
)


def part(name: str) -> Part:
    for p in PARTS:
        if p.name == name:
            return p
    raise KeyError(f"unknown part {name!r}; known: {', '.join(p.name for p in PARTS)}")


def load(path: str) -> Any:
    """The object a ``module:attribute`` path names (imported on demand)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
