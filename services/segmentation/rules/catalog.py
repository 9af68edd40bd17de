"""Segments as rules see them: which exist, what ``member_of`` may reach, what a rule reads.

A dynamic segment named by ``member_of`` is *inlined* when rules are compiled (its rule is
evaluated in place, at its current version), so evaluating one customer never depends on the
order in which segments are evaluated. A static segment named by ``member_of`` is a lookup of
its member list. Cycles are therefore refused when a rule is saved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from services.segmentation.rules.nodes import Condition, Group, MemberOf, Node, Not, Performed
from services.segmentation.rules.parse import MAX_EXPANDED_NODES, RuleError, count_nodes

__all__ = ["MAX_MEMBER_OF_DEPTH", "SegmentDef", "check_references", "inputs", "time_relative"]

MAX_MEMBER_OF_DEPTH = 5


@dataclass(frozen=True)
class SegmentDef:
    id: UUID
    kind: str
    version: int
    node: Node | None
    refers_to: tuple[UUID, ...] = field(default=())


Catalog = Mapping[UUID, SegmentDef]


def member_refs(node: Node, at: str = "/rule") -> Iterator[tuple[UUID, str]]:
    """Every ``member_of`` in ``node`` with its JSON pointer."""
    if isinstance(node, Group):
        for i, child in enumerate(node.children):
            yield from member_refs(child, f"{at}/{node.op}/{i}")
    elif isinstance(node, Not):
        yield from member_refs(node.child, f"{at}/not")
    elif isinstance(node, MemberOf):
        yield node.segment_id, f"{at}/member_of"


def _reaches(catalog: Catalog, start: UUID, target: UUID) -> list[UUID] | None:
    """A ``member_of`` path from ``start`` to ``target``, if there is one."""
    stack: list[tuple[UUID, list[UUID]]] = [(start, [start])]
    seen: set[UUID] = set()
    while stack:
        current, path = stack.pop()
        if current == target:
            return path
        if current in seen or current not in catalog:
            continue
        seen.add(current)
        stack.extend((ref, [*path, ref]) for ref in catalog[current].refers_to)
    return None


def _expanded(node: Node, catalog: Catalog, depth: int = 0) -> tuple[int, int]:
    """(nodes, member_of depth) with every dynamic ``member_of`` inlined."""
    nodes, deepest = count_nodes(node), depth
    for ref, _ in member_refs(node):
        target = catalog.get(ref)
        if target is not None and target.node is not None and depth < MAX_MEMBER_OF_DEPTH + 1:
            more, inner = _expanded(target.node, catalog, depth + 1)
            nodes += more
            deepest = max(deepest, inner)
    return nodes, deepest


def check_references(
    node: Node, catalog: Catalog, *, self_id: UUID | None, pointer: str = "/rule"
) -> list[RuleError]:
    """Problems with the segments ``node`` names: unknown ones, cycles, too much expansion."""
    errors: list[RuleError] = []
    for ref, at in member_refs(node, pointer):
        if ref not in catalog:
            errors.append({"pointer": at, "code": "unknown-segment", "detail": f"no segment {ref}"})
        elif self_id is not None and (path := _reaches(catalog, ref, self_id)) is not None:
            chain = " → ".join(str(p) for p in [self_id, *path])
            errors.append(
                {"pointer": at, "code": "cycle", "detail": f"member_of makes a cycle: {chain}"}
            )
    if errors:
        return errors
    nodes, depth = _expanded(node, catalog)
    if depth > MAX_MEMBER_OF_DEPTH:
        errors.append(
            {
                "pointer": pointer,
                "code": "rule-too-deep",
                "detail": f"member_of may nest at most {MAX_MEMBER_OF_DEPTH} segments deep",
            }
        )
    elif nodes > MAX_EXPANDED_NODES:
        errors.append(
            {
                "pointer": pointer,
                "code": "rule-too-large",
                "detail": f"with every member_of expanded the rule has {nodes} nodes "
                f"(at most {MAX_EXPANDED_NODES})",
            }
        )
    return errors


def inputs(node: Node, catalog: Catalog) -> set[str]:
    """What the rule reads: feature columns, ``event:<type>``, ``segment:<static id>``."""
    if isinstance(node, Group):
        return set().union(*(inputs(c, catalog) for c in node.children))
    if isinstance(node, Not):
        return inputs(node.child, catalog)
    if isinstance(node, Condition):
        return {node.field.column}
    if isinstance(node, Performed):
        return {f"event:{node.event}"}
    target = catalog.get(node.segment_id)
    if target is None or target.node is None:
        return {f"segment:{node.segment_id}"}
    return inputs(target.node, catalog)


def time_relative(node: Node, catalog: Catalog) -> bool:
    """Whether time passing alone can change the rule's answer for a customer."""
    if isinstance(node, Group):
        return any(time_relative(c, catalog) for c in node.children)
    if isinstance(node, Not):
        return time_relative(node.child, catalog)
    if isinstance(node, Condition):
        return node.op in ("within_last", "older_than") or node.field.windowed
    if isinstance(node, Performed):
        return True
    target = catalog.get(node.segment_id)
    return target is not None and target.node is not None and time_relative(target.node, catalog)
