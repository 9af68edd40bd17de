"""Campaign templates: Jinja2 in a sandbox, checked when saved, rendered per recipient.

What a template may use (anything else is refused at save time with its line and column):

- ``customer.id``, ``customer.display_name``, ``customer.first_name`` (the first word of the
  display name), ``customer.email``, ``customer.phone``, ``customer.locale``,
  ``customer.timezone``, ``customer.lifecycle_stage``, ``customer.tags`` (a list) and
  ``customer.custom_fields.<any name>``;
- ``campaign.id``, ``campaign.name``;
- ``unsubscribe_url``: the message's signed unsubscribe link (e-mail without it gets an
  unsubscribe line appended when tracking is on).

A value the customer does not have renders as an empty string; ``{{ customer.first_name |
default("friend") }}`` gives a fallback. The sandbox refuses attribute tricks (``__class__``
and the like) and unknown filters are syntax errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "CAMPAIGN_FIELDS",
    "CUSTOMER_FIELDS",
    "TemplateProblem",
    "check_template",
    "render",
]

CUSTOMER_FIELDS = frozenset(
    {
        "id",
        "display_name",
        "first_name",
        "email",
        "phone",
        "locale",
        "timezone",
        "lifecycle_stage",
        "tags",
        "custom_fields",
    }
)
CAMPAIGN_FIELDS = frozenset({"id", "name"})
_ROOTS = {"customer": CUSTOMER_FIELDS, "campaign": CAMPAIGN_FIELDS}
#: Plain variables (no fields).
_PLAIN = frozenset({"unsubscribe_url"})

_ENV = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template is refused, and where (1-based line and column)."""

    detail: str
    line: int
    column: int | None = None


def _column(source: str, line: int, needle: str) -> int | None:
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    found = lines[line - 1].find(needle)
    return found + 1 if found >= 0 else None


def _field(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def check_template(source: str) -> list[TemplateProblem]:
    """Every problem of ``source`` (empty: it may be saved)."""
    try:
        ast = _ENV.parse(source)
        _ENV.from_string(source)  # compiling finds unknown filters and tests
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"syntax error: {exc.message}", exc.lineno)]
    except TemplateError as exc:  # pragma: no cover - other compile-time refusals
        return [TemplateProblem(f"invalid template: {exc}", 1)]
    problems: list[TemplateProblem] = []
    for name in sorted(meta.find_undeclared_variables(ast) - set(_ROOTS) - _PLAIN):
        line = next(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"), 1
        )
        problems.append(
            TemplateProblem(
                f"unknown variable {name!r} (use customer.…, campaign.… or unsubscribe_url)",
                line,
                _column(source, line, name),
            )
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in _ROOTS):
            continue
        field = _field(node)
        allowed = _ROOTS[target.name]
        if field is None or field not in allowed:
            shown = f"{target.name}.{field}" if field is not None else f"{target.name}[…]"
            problems.append(
                TemplateProblem(
                    f"unknown field {shown!r}; known: {', '.join(sorted(allowed))}",
                    node.lineno,
                    _column(source, node.lineno, shown if field is not None else target.name),
                )
            )
    if not problems:
        # A trial render for a customer with no data at all: ``{{ 1 / 0 }}`` or a call the
        # sandbox refuses fails here, at save time, rather than for every recipient.
        try:
            _compiled(source).render(
                customer={"id": "00000000-0000-0000-0000-000000000000", "tags": []},
                campaign={"id": "", "name": ""},
                unsubscribe_url="",
            )
        except Exception as exc:
            problems.append(
                TemplateProblem(f"cannot be rendered: {exc}", getattr(exc, "lineno", None) or 1)
            )
    return sorted(problems, key=lambda p: (p.line, p.column or 0))


_FIRST_WORD = re.compile(r"\S+")


def customer_context(row: dict[str, Any]) -> dict[str, Any]:
    """The ``customer`` variable from a recipient projection row (missing values: None)."""
    name = row.get("display_name")
    first = _FIRST_WORD.match(name) if name else None
    return {
        "id": str(row["customer_id"]),
        "display_name": name,
        "first_name": first.group(0) if first else None,
        "email": row.get("email"),
        "phone": row.get("phone"),
        "locale": row.get("locale"),
        "timezone": row.get("timezone"),
        "lifecycle_stage": row.get("lifecycle_stage"),
        "tags": list(row.get("tags") or []),
        "custom_fields": dict(row.get("custom_fields") or {}),
    }


def _blank_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """Compiling costs milliseconds; a campaign renders the same source per recipient."""
    return _ENV.from_string(source)


def render(
    source: str, customer: dict[str, Any], campaign: dict[str, Any], unsubscribe_url: str = ""
) -> str:
    """``source`` (already checked) for one customer. Missing and null values render empty."""
    return _compiled(source).render(
        customer=_blank_none(customer), campaign=campaign, unsubscribe_url=unsubscribe_url
    )
