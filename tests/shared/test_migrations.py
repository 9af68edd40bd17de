"""Migrations: reversible, per part, and in agreement with the models."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.migrate import downgrade, upgrade
from shared.parts import PARTS, load

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _metadata(path: str):  # type: ignore[no-untyped-def]
    return load(path).metadata


async def _tables(url: str, schema: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def test_every_part_upgrades_downgrades_and_upgrades_again(infra):
    name = f"rapport_mig_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(infra.create_database, name)
    try:
        for part in PARTS:
            metadata = _metadata(part.base)
            expected = {t.name for t in metadata.sorted_tables} | {"alembic_version"}
            await asyncio.to_thread(upgrade, part.name, "head", url)
            assert await _tables(url, metadata.schema) == expected
            await asyncio.to_thread(downgrade, part.name, "base", url)
            assert await _tables(url, metadata.schema) == {"alembic_version"}
            await asyncio.to_thread(upgrade, part.name, "head", url)
            assert await _tables(url, metadata.schema) == expected
    finally:
        await asyncio.to_thread(infra.drop_database, name)


@pytest.mark.parametrize("part", PARTS, ids=[p.name for p in PARTS])
async def test_autogenerate_finds_no_difference_between_models_and_migrations(part, infra):
    metadata = _metadata(part.base)
    schema = metadata.schema

    def include_name(name, type_, parent_names):  # type: ignore[no-untyped-def]
        return name == schema if type_ == "schema" else True

    def compare(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "version_table_schema": schema,
                "compare_type": True,
                "compare_server_default": True,
                "target_metadata": metadata,
            },
        )
        return compare_metadata(context, metadata)

    engine = create_async_engine(infra.database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(compare)
    finally:
        await engine.dispose()
    assert diff == []
