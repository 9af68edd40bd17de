"""Alembic environment shared by every part; the part is chosen by the caller
(``shared.migrate.alembic_config(part)`` or ``alembic -x part=orders``). Each part migrates only
its own schema and keeps its own version table in that schema."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.parts import load
from shared.parts import part as find_part

config = context.config
part_name = config.attributes.get("part") or context.get_x_argument(as_dictionary=True)["part"]
part = find_part(part_name)


target_metadata = load(part.base).metadata
schema = target_metadata.schema
url = config.attributes.get("url") or load(part.settings)().database_url


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "schema":
        return bool(name == schema)
    return True


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await connection.commit()
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
