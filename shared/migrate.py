"""Alembic, driven per part: each part has its own version folder, its own schema and its
own version table (``<schema>.alembic_version``), so parts migrate independently and may live
in different databases."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.parts import PARTS, part

__all__ = ["MIGRATIONS_DIR", "alembic_config", "downgrade", "upgrade", "upgrade_all"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(part_name: str, url: str | None = None) -> Config:
    part(part_name)  # validate the name
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions" / part_name))
    config.set_main_option(
        "file_template", "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    config.attributes["part"] = part_name
    if url is not None:
        config.attributes["url"] = url
    return config


def upgrade(part_name: str, revision: str = "head", url: str | None = None) -> None:
    command.upgrade(alembic_config(part_name, url), revision)


def downgrade(part_name: str, revision: str = "base", url: str | None = None) -> None:
    command.downgrade(alembic_config(part_name, url), revision)


def upgrade_all(urls: dict[str, str] | None = None) -> None:
    for p in PARTS:
        upgrade(p.name, url=(urls or {}).get(p.name))
