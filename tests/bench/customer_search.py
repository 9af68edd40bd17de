"""Customer search benchmark: ``GET /customers:search``'s exact query at 1,000,000 customers.

Loads ``BENCH_SEARCH_ROWS`` (default 1,000,000) synthetic customers — Chinese, Latin and mixed
names, e-mails, E.164 phones — with COPY into an embedded PostgreSQL (or
``BENCH_DATABASE_URL``) migrated to head, builds the trigram index after the load, then runs a
varied query set (Chinese names, typos, reordered words, e-mail prefixes, phone fragments)
through :func:`services.customer360.search.repository.search` — the endpoint's own SQL — and
prints p50/p95/p99 latency against the goal (p95 ≤ 50 ms at 1M).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from typing import Any

import asyncpg

from services.customer360.search.repository import search
from shared.auth import Principal
from shared.db import Database
from shared.devstack import EmbeddedPostgres
from shared.migrate import upgrade
from tests.bench.outbox import STATE, _pct

ROWS = int(os.environ.get("BENCH_SEARCH_ROWS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_SEARCH_ROUNDS", "5"))
GOAL_P95_MS = 50.0
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红梅鑫波斌宇浩凯健俊帆帅旭宁婷雪琳晨阳"
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
    "lin",
    "luo",
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
    "elizabeth",
    "david",
    "wei",
    "fang",
    "na",
    "min",
    "jing",
    "lei",
    "jun",
    "yang",
    "yong",
    "jie",
    "tao",
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
    "rodriguez",
    "martinez",
    "wilson",
    "anderson",
    "taylor",
    "thomas",
    "moore",
]
DOMAINS = ["example.com", "mail.cn", "qq.com", "acme.test", "163.com"]

QUERIES = [
    "张伟",
    "王芳",
    "李娜 li",
    "张 wei",
    "wei zhang",
    "Zhnag Wei",
    "jonh smith",
    "Jennifer Garcai",
    "zhang.wei@exa",
    "mary.jones",
    "5678",
    "13812345678",
    "138 0000",
    "415555",
    "qq.com",
    "陈静",
]


def _row(i: int, rnd: random.Random) -> tuple[Any, ...]:
    kind = rnd.random()
    if kind < 0.45:
        given = "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))
        name = rnd.choice(SURNAMES) + given
        local = f"{rnd.choice(PINYIN)}.{rnd.choice(PINYIN)}{i}"
        phone = f"+861{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
    elif kind < 0.6:
        family = rnd.choice(PINYIN)
        name = f"{rnd.choice(SURNAMES)}{rnd.choice(GIVEN)} {rnd.choice(FIRST).title()} {family.title()}"
        local = f"{family}{i}"
        phone = f"+861{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
    else:
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        name = f"{first.title()} {last.title()}"
        local = f"{first}.{last}{i}"
        phone = f"+1415{rnd.randrange(10**7):07d}"
    email = f"{local}@{rnd.choice(DOMAINS)}"
    team = f"team-{i % 20}"
    return (
        uuid.UUID(int=rnd.getrandbits(128) | 1 << 62 & ~(1 << 63)),
        "person",
        name,
        [email],
        [phone],
        [],
        team,
    )


async def load(dsn: str) -> tuple[float, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP INDEX IF EXISTS customer360.ix_customer_search_text")
        rnd = random.Random(42)
        started = time.perf_counter()
        chunk = 50_000
        for start in range(0, ROWS, chunk):
            records = [_row(i, rnd) for i in range(start, min(ROWS, start + chunk))]
            await conn.copy_records_to_table(
                "customer",
                schema_name="customer360",
                records=records,
                columns=["id", "kind", "display_name", "emails", "phones", "tags", "team_id"],
            )
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "CREATE INDEX ix_customer_search_text ON customer360.customer "
            "USING gin (search_text gin_trgm_ops)"
        )
        await conn.execute("ANALYZE customer360.customer")
        return loaded, time.perf_counter() - started
    finally:
        await conn.close()


async def measure(database: Database) -> tuple[list[float], dict[str, tuple[float, int]]]:
    principal = Principal(subject="bench", scopes=frozenset({"customers:read"}), scope_mode="all")
    latencies: list[float] = []
    per_query: dict[str, tuple[float, int]] = {}
    for round_ in range(ROUNDS + 1):
        for q in QUERIES:
            async with database.session() as session:
                t0 = time.perf_counter()
                hits = await search(session, principal, q, 20)
                elapsed = (time.perf_counter() - t0) * 1000
            if round_ == 0:
                continue  # warm-up
            latencies.append(elapsed)
            worst, _ = per_query.get(q, (0.0, 0))
            per_query[q] = (max(worst, elapsed), len(hits))
    return latencies, per_query


async def main() -> None:
    started: list[Any] = []
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(STATE / "pg")
        await asyncio.to_thread(postgres.start)
        started.append(postgres)
        postgres.drop_database("rapport_bench_search")
        postgres.create_database("rapport_bench_search")
        url = postgres.sqlalchemy_url("rapport_bench_search")
    try:
        await asyncio.to_thread(upgrade, "customer360", "head", url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        print(f"customer search benchmark — {ROWS:,} customers; PostgreSQL: {url.split('@')[-1]}")
        load_s, index_s = await load(dsn)
        print(
            f"COPY load {load_s:.1f}s ({ROWS / load_s:,.0f} rows/s); trigram index {index_s:.1f}s"
        )
        database = Database(url, schema="customer360", pool_size=2, application_name="bench")
        try:
            latencies, per_query = await measure(database)
        finally:
            await database.dispose()
    finally:
        for process in reversed(started):
            await asyncio.to_thread(process.stop)
    p50, p95, p99 = (_pct(latencies, q) for q in (0.50, 0.95, 0.99))
    print(f"{len(latencies)} queries ({len(QUERIES)} kinds x {ROUNDS} rounds, limit 20)")
    for q, (worst, hits) in per_query.items():
        print(f"  {q!r:24} worst {worst:8.1f} ms  {hits:3d} hits")
    print(f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms")
    print(
        f"goal p95 ≤ {GOAL_P95_MS:.0f} ms: ratio {GOAL_P95_MS / p95:.2f} ({'met' if p95 <= GOAL_P95_MS else 'NOT met'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
