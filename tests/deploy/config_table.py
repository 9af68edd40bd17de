"""The README's configuration table, from the Settings classes.

Every field of :class:`shared.settings.RapportSettings` is one row ``RAPPORT_<NAME>`` (each
part also reads ``<PART>_<NAME>`` first); a field a part adds, or whose default it changes,
is one row ``<PART>_<NAME>``. ``python -m tests.deploy.config_table`` prints the table, with
the meanings taken from the ``#:`` comments above the fields (it refuses fields without one);
tests/deploy/test_configuration.py fails when a setting is missing from the README, or its
default there is not the default in the code.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from shared.parts import PARTS, load
from shared.settings import RapportSettings

ROOT = Path(__file__).resolve().parents[2]

#: The unprefixed names also read for these fields.
UNPREFIXED = {"database_url": "DATABASE_URL", "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"}


@dataclass(frozen=True)
class Row:
    variable: str
    default: str
    meaning: str


def render_default(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal | int | float | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def field_default(cls: type[RapportSettings], name: str) -> Any:
    info = cls.model_fields[name]
    if info.default is not PydanticUndefined:
        return info.default
    assert info.default_factory is not None
    return info.default_factory()  # type: ignore[call-arg]


def field_comments(cls: type) -> dict[str, str]:
    """``#:`` comments written above each field in the class body."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"^\s{4}(\w+)\s*:", line)
        if match and pending:
            comments[match.group(1)] = " ".join(pending)
        if not stripped.startswith("#"):
            pending = []
    return comments


def expected_rows() -> list[Row]:
    rows: list[Row] = []
    base_comments = field_comments(RapportSettings)
    for name in RapportSettings.model_fields:
        variable = f"RAPPORT_{name.upper()}"
        if name in UNPREFIXED:
            variable = f"{UNPREFIXED[name]}"
        rows.append(
            Row(
                variable,
                render_default(field_default(RapportSettings, name)),
                base_comments.get(name, ""),
            )
        )
    for part in PARTS:
        cls: type[RapportSettings] = load(part.settings)
        comments = field_comments(cls)
        for name in cls.model_fields:
            default = render_default(field_default(cls, name))
            inherited = name in RapportSettings.model_fields
            if inherited and default == render_default(field_default(RapportSettings, name)):
                continue
            rows.append(Row(f"{part.env_prefix}{name.upper()}", default, comments.get(name, "")))
    return rows


def readme_rows() -> dict[str, tuple[str, str]]:
    """variable → (default, meaning) of the table under ``## Configuration``."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Z0-9_]+)` \| (.+?) \| (.+) \|", line)
        if match:
            variable, default, meaning = match.groups()
            assert variable not in rows, f"{variable} twice in the README"
            rows[variable] = (default.strip("`"), meaning)
    return rows


def markdown(rows: list[Row]) -> str:
    """The table. A setting's meaning is its ``#:`` comment, else what the README says now;
    a setting with neither is refused (every row needs a meaning)."""
    documented = readme_rows()
    meanings = {
        row.variable: row.meaning.strip() or documented.get(row.variable, ("", ""))[1].strip()
        for row in rows
    }
    undescribed = [variable for variable, meaning in meanings.items() if not meaning]
    if undescribed:
        raise ValueError(f"add a #: comment above: {', '.join(undescribed)}")
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for row in rows:
        default = "—" if row.default == "—" else f"`{row.default}`"
        lines.append(f"| `{row.variable}` | {default} | {meanings[row.variable]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(expected_rows()), end="")
