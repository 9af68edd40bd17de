"""Campaign send benchmark: messages per second from a started campaign into a local SMTP
server.

The interactions campaign sender (:class:`services.interactions.campaign.sender.CampaignSender`)
runs in this process against an embedded PostgreSQL (or ``BENCH_DATABASE_URL``) migrated to
head; the SMTP server (aiosmtpd, accepting everything) runs in a child process so it does not
share this interpreter. ``BENCH_CAMPAIGN_MESSAGES`` recipients (consented, with an address)
are written straight into the recipient projection; the campaign is started through the
service's own start (one INSERT … SELECT), then one sender pass sends everything: per message
a claim transaction, rendering (tracking links on), SMTP, and the ``sent`` transaction with
its outbound interaction and outbox event.

Printed: the start (materialisation) rate, messages/s through the sender, and the raw limit
in the same run — the same number of messages pushed with aiosmtplib alone over as many
connections, no database — and their ratio.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from sqlalchemy import text

from services.interactions.campaign import service
from services.interactions.campaign.sender import CampaignSender
from services.interactions.config import Settings
from services.interactions.models import Campaign
from shared.db import Database
from shared.devstack import EmbeddedPostgres
from shared.migrate import upgrade
from tests.bench import table
from tests.bench.outbox import STATE

MESSAGES = int(os.environ.get("BENCH_CAMPAIGN_MESSAGES", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_CAMPAIGN_CONCURRENCY", "4"))
_SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
print(Sink.count, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(database: Database) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(MESSAGES)]
    async with database.session() as session:
        await session.execute(
            text(
                "INSERT INTO interactions.campaign_recipient"
                " (customer_id, display_name, email, consent_email, timezone, custom_fields)"
                " SELECT id, 'Customer ' || n, 'c' || n || '@bench.example', true, 'UTC',"
                " jsonb_build_object('tier', 'gold')"
                " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS t(id, n)"
            ),
            {"ids": ids},
        )
    return ids


async def _raw(port: int) -> float:
    """The same messages with aiosmtplib alone: the SMTP path's own limit."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(MESSAGES):
        queue.put_nowait(n)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await smtp.connect()
        try:
            while not queue.empty():
                n = queue.get_nowait()
                mail = EmailMessage()
                mail["From"] = "bench@rapport.invalid"
                mail["To"] = f"c{n}@bench.example"
                mail["Subject"] = f"Customer {n}, a gift"
                mail["Message-ID"] = f"<{uuid.uuid4()}@rapport.invalid>"
                mail.set_content(f"Dear Customer {n},\nYour tier: gold.\n")
                await smtp.send_message(mail)
        finally:
            await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return MESSAGES / (time.perf_counter() - started)


async def main() -> None:
    started: list[Any] = []
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(STATE / "pg")
        await asyncio.to_thread(postgres.start)
        started.append(postgres)
        postgres.drop_database("rapport_bench_campaign")
        postgres.create_database("rapport_bench_campaign")
        url = postgres.sqlalchemy_url("rapport_bench_campaign")
    port = _free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SINK,
        str(port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert sink.stdout is not None
        assert sink.stdin is not None
        await sink.stdout.readline()
        await asyncio.to_thread(upgrade, "interactions", "head", url)
        settings = Settings(
            database_url=url,
            smtp_port=port,
            campaign_sender_concurrency=CONCURRENCY,
            campaign_rate_per_s=1_000_000,
            campaign_quiet_start="00:00",
            campaign_quiet_end="00:00",
            campaign_tracking_base_url="https://rapport.example/api/v1/campaign-links",
            log_level="WARNING",
        )
        database = Database(
            url, schema="interactions", pool_size=CONCURRENCY + 2, application_name="bench"
        )
        try:
            print(
                f"campaign send benchmark — {MESSAGES:,} e-mails, {CONCURRENCY} SMTP "
                f"connections; PostgreSQL: {url.split('@')[-1]}"
            )
            ids = await _seed(database)
            now = datetime.now(UTC)
            campaign = Campaign(
                name="Bench",
                status="draft",
                channel="email",
                customer_ids=ids,
                subject_template="{{ customer.first_name }}, a gift",
                body_template="Dear {{ customer.display_name }},\n"
                "Your tier: {{ customer.custom_fields.tier }}.\nhttps://shop.example/gift\n",
                created_by="bench",
                created_at=now,
                updated_at=now,
                version=1,
            )
            t0 = time.perf_counter()
            async with database.session() as session:
                session.add(campaign)
                await session.flush()
                counts = await service.start(session, campaign, settings, now)
            start_rate = counts.audience / (time.perf_counter() - t0)
            sender = CampaignSender(database, settings)
            t0 = time.perf_counter()
            sent = await sender.run_once()
            rate = sent / (time.perf_counter() - t0)
            await sender.close()
        finally:
            await database.dispose()
        raw_rate = await _raw(port)
        sink.stdin.close()
        arrived = int((await sink.stdout.readline()).strip() or 0)
    finally:
        if sink.returncode is None:
            sink.kill()
        await sink.wait()
        for process in reversed(started):
            await asyncio.to_thread(process.stop)
    print(f"start (audience → message rows)  {start_rate:10,.0f} rows/s")
    print(f"campaign sender                  {rate:10,.0f} messages/s   ({sent:,} sent)")
    print(f"aiosmtplib alone, same server    {raw_rate:10,.0f} messages/s")
    print(f"sender / raw: {rate / raw_rate:.2f}; arrived at the SMTP server: {arrived:,}")
    table.record(
        "campaign send: e-mails to a local SMTP server",
        f"{rate:,.0f} messages/s",
        raw=f"{raw_rate:,.0f} messages/s (aiosmtplib alone)",
        ratio=rate / raw_rate,
        goal="(no target)",
    )


if __name__ == "__main__":
    asyncio.run(main())
