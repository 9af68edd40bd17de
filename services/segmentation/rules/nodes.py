"""The parsed form of a rule: small immutable nodes, built only by :mod:`.parse`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from services.segmentation.rules.fields import FieldSpec

__all__ = ["Condition", "Group", "MemberOf", "Node", "Not", "Performed", "Range", "Scalar"]

Scalar = Decimal | str | bool | datetime


@dataclass(frozen=True, slots=True)
class Range:
    """A time range; ``None`` bounds are open. Dates were widened to whole UTC days."""

    lo: datetime | None
    lo_inclusive: bool
    hi: datetime | None
    hi_inclusive: bool


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``. ``op`` is one of the DSL's operators, except that ``before``,
    ``after`` and ``between`` on timestamps become ``range`` with a :class:`Range` value,
    and ``within_last`` / ``older_than`` carry their number of days as ``value``."""

    field: FieldSpec
    key: str | None
    op: str
    value: Scalar | tuple[Scalar, ...] | Range | int | None


@dataclass(frozen=True, slots=True)
class Group:
    op: Literal["all", "any"]
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Performed:
    """The customer has at least / at most ``count`` events of ``event`` matching ``where``
    in the last ``within_days`` days."""

    event: str
    where: tuple[Condition, ...]
    at_least: bool
    count: int
    within_days: int


@dataclass(frozen=True, slots=True)
class MemberOf:
    segment_id: UUID


Node = Group | Not | Condition | Performed | MemberOf
