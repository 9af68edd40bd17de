"""The summary table ``make bench`` prints and writes."""

from __future__ import annotations

from pathlib import Path

from tests.bench import table


def test_rows_render_aligned_and_are_written_for_comparison(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(table, "ROWS", [])
    table.record("search p95", "45.2 ms", ratio=0.904, goal="≤ 50 ms", met=True)
    table.record("import", "7,398 rows/s", raw="28,688 rows/s raw COPY", ratio=0.258, met=False)
    table.record("fan-out", "1,534 deliveries/s")
    lines = table.render().splitlines()
    assert lines[0].startswith("| figure")
    assert len({len(line) for line in lines}) == 1  # every line as wide as the header
    assert "| 0.90 " in lines[2]
    assert lines[2].rstrip().endswith("| yes |")
    assert "| NO  |" in lines[3]
    written = table.write(tmp_path)
    assert written.read_text(encoding="utf-8") == (tmp_path / "latest.md").read_text(
        encoding="utf-8"
    )
    assert "28,688 rows/s raw COPY" in written.read_text(encoding="utf-8")
