"""Customer import benchmark: the import job's rate beside raw asyncpg COPY, same run.

Writes ``BENCH_IMPORT_ROWS`` (default 200,000) synthetic customers to a CSV file, runs the
import job the endpoint starts (:func:`services.customer360.imports.service.run_job`:
parse, normalise, resolve identity keys, insert customers + identity keys + audit + outbox
rows, per chunk) against an embedded PostgreSQL (or ``BENCH_DATABASE_URL``) migrated to head,
then COPYs the same rows, already normalised, with ``copy_records_to_table`` into
``customer360.customer`` of a second fresh database (the same table, indexes and search-terms
trigger the import writes through). A COPY into a trigger-less ``LIKE … INCLUDING ALL`` copy
is printed beside it for reference.
Prints both rates and the ratio against the goal (≥ 80 % of raw COPY).
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from services.customer360.imports.service import run_job
from services.customer360.models import ImportJob
from shared.db import Database
from shared.devstack import EmbeddedPostgres
from shared.migrate import upgrade
from tests.bench import table
from tests.bench.outbox import STATE

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "200000"))
GOAL = 0.80
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华玉萍红梅鑫波斌宇浩凯健俊帆帅旭宁婷雪琳晨阳"
PINYIN = [
    "wang",
    "li",
    "zhang",
    "liu",
    "chen",
    "yang",
    "huang",
    "zhao",
    "wu",
    "zhou",
    "xu",
    "sun",
    "ma",
    "zhu",
    "hu",
    "guo",
    "he",
    "gao",
]
FIRST = [
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "david",
    "wei",
    "fang",
]
LAST = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "wilson",
    "anderson",
    "taylor",
]


def _rows() -> list[tuple[str, str, str]]:
    rnd = random.Random(7)
    rows = []
    for i in range(ROWS):
        if i % 2:
            name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + rnd.choice(GIVEN)
            email = f"{rnd.choice(PINYIN)}{i}@example.com"
            phone = f"+86138{i:08d}"
        else:
            name = f"{rnd.choice(FIRST).title()} {rnd.choice(LAST).title()}"
            email = f"{rnd.choice(FIRST)}.{i}@example.com"
            phone = f"+1415{200 + i // 10000 % 800}{i % 10000:04d}"
        rows.append((name, email, phone))
    return rows


async def _raw_copy(
    started: list[Any], url: str, rows: list[tuple[str, str, str]]
) -> tuple[float, float]:
    """Seconds to COPY the normalised rows into ``customer360.customer`` of a fresh database
    at head (its indexes and its search-terms trigger fire, as for any insert), and into a
    bare ``LIKE … INCLUDING ALL`` copy of it (indexes, but no trigger: search text stays empty).
    """
    copy_url = url.rsplit("/", 1)[0] + "/rapport_bench_copy"
    if started:
        started[0].drop_database("rapport_bench_copy")
        started[0].create_database("rapport_bench_copy")
    await asyncio.to_thread(upgrade, "customer360", "head", copy_url)
    conn = await asyncpg.connect(copy_url.replace("postgresql+asyncpg://", "postgresql://"))
    columns = ["id", "kind", "display_name", "emails", "phones", "tags"]
    try:
        timings = []
        for table in ("customer", "bench_bare"):
            if table == "bench_bare":
                await conn.execute(
                    "CREATE TABLE customer360.bench_bare (LIKE customer360.customer INCLUDING ALL)"
                )
            records: list[tuple[Any, ...]] = [
                (uuid.uuid4(), "person", n, [e], [p], []) for n, e, p in rows
            ]
            t0 = time.perf_counter()
            await conn.copy_records_to_table(
                table, schema_name="customer360", records=records, columns=columns
            )
            timings.append(time.perf_counter() - t0)
        return timings[0], timings[1]
    finally:
        await conn.close()
        if started:
            started[0].drop_database("rapport_bench_copy")


async def main() -> None:
    started: list[Any] = []
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(STATE / "pg")
        await asyncio.to_thread(postgres.start)
        started.append(postgres)
        postgres.drop_database("rapport_bench_import")
        postgres.create_database("rapport_bench_import")
        url = postgres.sqlalchemy_url("rapport_bench_import")
    rows = _rows()
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as f:
        f.write("display_name,email,phone\n")
        f.writelines(f"{n},{e},{p}\n" for n, e, p in rows)
        path = Path(f.name)
    try:
        await asyncio.to_thread(upgrade, "customer360", "head", url)
        print(f"customer import benchmark — {ROWS:,} CSV rows; PostgreSQL: {url.split('@')[-1]}")
        database = Database(url, schema="customer360", pool_size=2, application_name="bench")
        try:
            async with database.session() as session:
                job = ImportJob(format="csv", created_by="bench")
                session.add(job)
                await session.flush()
                job_id = job.id
            t0 = time.perf_counter()
            await run_job(database, job_id, path, "csv", ",", "bench")
            import_s = time.perf_counter() - t0
            async with database.session() as session:
                counts = (
                    await session.execute(
                        text(
                            "SELECT status, created, updated, failed, error,"
                            " (SELECT count(*) FROM customer360.outbox) AS events"
                            " FROM customer360.import_job WHERE id = :id"
                        ),
                        {"id": job_id},
                    )
                ).one()
        finally:
            await database.dispose()
        copy_s, bare_s = await _raw_copy(started, url, rows)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        for process in reversed(started):
            await asyncio.to_thread(process.stop)
    print(
        f"import job: status {counts.status}, created {counts.created:,}, updated "
        f"{counts.updated:,}, failed {counts.failed:,}, outbox events {counts.events:,}"
        + (f", error {counts.error}" if counts.error else "")
    )
    import_rate, copy_rate = ROWS / import_s, ROWS / copy_s
    print(f"import  {import_s:7.1f}s  {import_rate:10,.0f} rows/s")
    print(f"raw COPY {copy_s:6.1f}s  {copy_rate:10,.0f} rows/s (same rows, normalised)")
    print(
        f"  (COPY into a bare copy of the table, no search trigger: {ROWS / bare_s:,.0f} rows/s;"
        f" import/bare {import_rate * bare_s / ROWS:.2f})"
    )
    ratio = import_rate / copy_rate
    print(f"ratio {ratio:.2f} (goal ≥ {GOAL:.2f}: {'met' if ratio >= GOAL else 'NOT met'})")
    table.record(
        f"customer import, {ROWS:,} CSV rows",
        f"{import_rate:,.0f} rows/s",
        raw=f"{copy_rate:,.0f} rows/s raw COPY",
        ratio=ratio,
        goal=f"≥ {GOAL:.2f} of COPY",
        met=ratio >= GOAL,
    )


if __name__ == "__main__":
    asyncio.run(main())
