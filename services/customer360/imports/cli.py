"""``rapport import FILE``: upload a customer file through the public API and follow it.

Goes through the gateway like any client (ARCHITECTURE: the CLI uses the public API), with a
token from ``--token`` or ``RAPPORT_TOKEN`` (``rapport token`` mints one in development). The
file is streamed from disk; progress is a one-line bar on stderr (no extra dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import httpx

__all__ = ["add_arguments", "main", "run_import"]

_TYPES = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson"}


def _bar(label: str, done: int, total: int | None, out: TextIO) -> None:
    if total:
        filled = int(30 * min(done, total) / total)
        out.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,}")
    else:
        out.write(f"\r{label} {done:,}")
    out.flush()


async def _chunks(path: Path, out: TextIO) -> AsyncIterator[bytes]:
    size = (await asyncio.to_thread(path.stat)).st_size
    sent = 0
    with await asyncio.to_thread(path.open, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, 256 * 1024):
            sent += len(chunk)
            _bar("upload", sent, size, out)
            yield chunk
    out.write("\n")


async def run_import(
    path: Path,
    *,
    base_url: str,
    token: str,
    transport: httpx.AsyncBaseTransport | None = None,
    poll_s: float = 0.5,
    out: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Upload ``path``, wait for the job to finish, return the job (and print its errors)."""
    content_type = _TYPES.get(path.suffix.lower(), "text/csv")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, transport=transport, timeout=60
    ) as client:
        response = await client.post(
            "/imports/customers",
            content=_chunks(path, out),
            headers={"Content-Type": content_type},
        )
        if response.status_code != 202:
            problem = response.json() if response.content else {}
            raise SystemExit(f"rapport import: {response.status_code} {problem.get('detail', '')}")
        job: dict[str, Any] = response.json()
        while job["status"] in ("queued", "running"):
            _bar("import", job["total"], None, out)
            await asyncio.sleep(poll_s)
            job = (await client.get(f"/imports/{job['id']}")).json()
        out.write(
            f"\rimport {job['status']}: {job['total']:,} rows, {job['created']:,} created, "
            f"{job['updated']:,} updated, {job['failed']:,} failed\n"
        )
        cursor: str | None = None
        shown = 0
        while job["failed"] and shown < 20:
            params: dict[str, str | int] = {"limit": 20}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(f"/imports/{job['id']}/errors", params=params)).json()
            for e in page["items"][: 20 - shown]:
                out.write(f"  row {e['row_number']}: {e['field'] or '-'}: {e['reason']}\n")
                shown += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
    return job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .csv or .ndjson file of customers")
    parser.add_argument(
        "--url",
        default=os.environ.get("RAPPORT_API_URL", "http://127.0.0.1:8000/api/v1"),
        help="the gateway's API base (default: $RAPPORT_API_URL or the local gateway)",
    )
    parser.add_argument("--token", default=os.environ.get("RAPPORT_TOKEN"))


def main(args: argparse.Namespace) -> int:
    if not args.token:
        print("rapport import: pass --token or set RAPPORT_TOKEN", file=sys.stderr)
        return 2
    job = asyncio.run(run_import(args.file, base_url=args.url, token=args.token))
    return 0 if job["status"] == "done" else 1
