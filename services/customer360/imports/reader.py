"""Parsing runs ahead of the database writer: in a thread, or in a process for big files.

Parsing and normalising a row (CSV, e-mail syntax, libphonenumber) is pure-Python CPU work of
tens of microseconds — as much as PostgreSQL spends storing it. In a thread it shares the GIL
with the writer; in a child process it uses the second core while this process and PostgreSQL
write, so files of :data:`PROCESS_FROM_BYTES` or more are parsed there (starting a process
costs about half a second, which small files are spared). Either way the chunks come back
through a queue of :data:`AHEAD_CHUNKS`, so the parser is never more than that far ahead and
memory stays flat however long the file is.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from services.customer360.imports.parsing import FieldSpec, ImportRow, RowError, read_rows

__all__ = ["AHEAD_CHUNKS", "PROCESS_FROM_BYTES", "Chunk", "ChunkReader"]

PROCESS_FROM_BYTES = 4 * 2**20
AHEAD_CHUNKS = 4
Chunk = list[ImportRow | list[RowError]]


@dataclass
class _Failed:
    reason: str


def _put(out: Any, item: Any, stop: Any) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _produce(
    out: Any,
    stop: Any,
    path: Path,
    fmt: str,
    delimiter: str,
    fields: dict[str, FieldSpec],
    default_region: str | None,
    chunk_rows: int,
) -> None:
    """Put chunks of ``chunk_rows`` parsed rows on ``out``, then ``None`` (or a failure)."""
    try:
        chunk: Chunk = []
        for row in read_rows(path, fmt, delimiter, fields, default_region):
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                if not _put(out, chunk, stop):
                    return
                chunk = []
        if chunk and not _put(out, chunk, stop):
            return
        _put(out, None, stop)
    except Exception as exc:
        _put(out, _Failed(f"{type(exc).__name__}: {exc}"), stop)


class ChunkReader:
    """``async with ChunkReader(...) as chunks: async for chunk in chunks: ...``"""

    def __init__(
        self,
        path: Path,
        fmt: str,
        delimiter: str,
        fields: dict[str, FieldSpec],
        default_region: str | None,
        chunk_rows: int,
    ) -> None:
        args = (path, fmt, delimiter, fields, default_region, chunk_rows)
        self._worker: multiprocessing.process.BaseProcess | threading.Thread
        if path.stat().st_size >= PROCESS_FROM_BYTES:
            context = multiprocessing.get_context("spawn")
            self._queue: Any = context.Queue(AHEAD_CHUNKS)
            self._stop: Any = context.Event()
            self._worker = context.Process(
                target=_produce, args=(self._queue, self._stop, *args), daemon=True
            )
        else:
            self._queue = queue.Queue(AHEAD_CHUNKS)
            self._stop = threading.Event()
            self._worker = threading.Thread(
                target=_produce, args=(self._queue, self._stop, *args), daemon=True
            )

    @property
    def in_process(self) -> bool:
        return isinstance(self._worker, multiprocessing.process.BaseProcess)

    async def __aenter__(self) -> ChunkReader:
        self._worker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if isinstance(self._worker, multiprocessing.process.BaseProcess):
            self._worker.terminate()
        await asyncio.to_thread(self._worker.join, 5)

    def __aiter__(self) -> ChunkReader:
        return self

    async def __anext__(self) -> Chunk:
        while True:
            try:
                item = await asyncio.to_thread(self._queue.get, timeout=1.0)
            except queue.Empty:
                if not self._worker.is_alive():
                    raise RuntimeError("the file's parser stopped unexpectedly") from None
                continue
            if item is None:
                raise StopAsyncIteration
            if isinstance(item, _Failed):
                raise RuntimeError(f"reading the file failed: {item.reason}")
            return item  # type: ignore[no-any-return]
