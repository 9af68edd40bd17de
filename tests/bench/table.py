"""The summary table of ``make bench``: one row per figure an issue names.

Each benchmark prints its own details and calls :func:`record` for its headline figures;
``make bench`` prints :func:`render` at the end and writes it to
``.rapport/bench/results/<UTC time>.md`` (and ``latest.md``) so runs can be compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Row", "record", "render", "write"]


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: str
    #: The raw limit measured in the same run (raw COPY, direct call, raw producer…).
    raw: str
    ratio: str
    goal: str
    #: ``None``: no goal to meet (informative figure).
    met: bool | None


ROWS: list[Row] = []


def record(
    figure: str,
    value: str,
    *,
    raw: str = "",
    ratio: float | None = None,
    goal: str = "",
    met: bool | None = None,
) -> None:
    ROWS.append(Row(figure, value, raw, "" if ratio is None else f"{ratio:.2f}", goal, met))


def render() -> str:
    header = ("figure", "Rapport", "raw, same run", "ratio", "goal", "met")
    rows = [
        (r.figure, r.value, r.raw, r.ratio, r.goal, {True: "yes", False: "NO", None: ""}[r.met])
        for r in ROWS
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)]
    )


def write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    text = f"# make bench — {stamp}, {os.cpu_count()} cores\n\n{render()}\n"
    path = directory / f"{stamp}.md"
    path.write_text(text, encoding="utf-8")
    (directory / "latest.md").write_text(text, encoding="utf-8")
    return path
