"""``rapport backup`` / ``rapport restore``: a round trip into an empty database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from services.customer360.config import Settings
from services.customer360.main import create_app
from shared.cli import main
from shared.ops.backup import BackupError, libpq_url, restore
from tests.support import api_client, bearer

WRITE = bearer("customers:read", "customers:write", "customers:pii")
NAMES = [("伟", "张"), ("秀英", "王"), ("Ada", "Lovelace"), ("José", "Martínez"), ("Zoë", "Ng")]


async def _fill(make_settings, url: str) -> None:
    """Real rows through the customer360 API (committed): profiles, identities, outbox."""
    app = create_app(make_settings(Settings, database_url=url))
    async with api_client(app, rollback=False) as client:
        for i, (given, family) in enumerate(NAMES):
            response = await client.post(
                "/customers",
                json={
                    "given_name": given,
                    "family_name": family,
                    "emails": [f"c{i}@backup.example"],
                    "phones": [f"+86 138 0013 80{i:02d}"],
                    "tags": ["backup", f"t{i}"],
                    "custom_fields": {},
                },
                headers=WRITE,
            )
            assert response.status_code == 201, response.text


async def _fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the sorted rows) of every table of every Rapport schema."""
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1)",
            ["gateway", "customer360", "interactions", "orders", "segmentation"],
        )
        result = {}
        for t in tables:
            name = f'"{t["schemaname"]}"."{t["tablename"]}"'
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
                f"AS sum FROM {name} r"
            )
            result[name] = (row["n"], row["sum"])
        return result
    finally:
        await conn.close()


def test_backup_then_restore_into_an_empty_database_gives_the_same_rows(
    new_database, make_settings, tmp_path: Path, capsys
) -> None:
    source = new_database(migrated=True)
    asyncio.run(_fill(make_settings, source))
    before = asyncio.run(_fingerprint(source))
    assert before['"customer360"."customer"'][0] == len(NAMES)
    assert before['"customer360"."outbox"'][0] == len(NAMES)
    assert len(before) > 40  # every part's tables, not just a few

    out = tmp_path / "backup"
    assert main(["backup", "--out", str(out), "--url", source]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["part"] for p in manifest["parts"]] == [
        "gateway",
        "customer360",
        "interactions",
        "orders",
        "segmentation",
    ]
    customer360 = manifest["parts"][1]
    assert customer360["tables"]["customer"] == len(NAMES)
    assert "pg_trgm" in customer360["extensions"]
    assert all((out / p["file"]).stat().st_size == p["bytes"] for p in manifest["parts"])
    assert "customer360" in capsys.readouterr().out

    target = new_database()  # empty: no schemas, no extensions
    assert main(["restore", str(out), "--url", target]) == 0
    assert asyncio.run(_fingerprint(target)) == before

    # The restored database is a working one: the migrations see it at head.
    async def versions(url: str) -> list[str]:
        conn = await asyncpg.connect(libpq_url(url))
        try:
            return [
                await conn.fetchval(f"SELECT version_num FROM {s}.alembic_version")
                for s in ("gateway", "orders")
            ]
        finally:
            await conn.close()

    assert asyncio.run(versions(target)) == asyncio.run(versions(source))


def test_restore_refuses_an_existing_schema_and_a_tampered_file(
    new_database, tmp_path: Path
) -> None:
    source = new_database(migrated=True)
    out = tmp_path / "backup"
    assert main(["backup", "--out", str(out), "--url", source, "--part", "orders"]) == 0

    with pytest.raises(BackupError, match="already exists"):
        restore(out, url=source)
    # --replace drops and restores the schema.
    assert main(["restore", str(out), "--url", source, "--replace"]) == 0

    dump = out / "orders.dump"
    dump.write_bytes(dump.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BackupError, match="checksum"):
        restore(out, url=new_database())
    assert main(["restore", str(out), "--url", new_database()]) == 2
