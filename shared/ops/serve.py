"""``rapport serve PART``: run one part under uvicorn, the way containers and ``make run`` do.

Why not ``uvicorn --factory …`` directly: uvicorn re-raises SIGTERM after its graceful
shutdown, so a part stopped in order still dies "killed by SIGTERM" (exit status 143) and
orchestrators log every rolling update as a crash. Here a stop by signal ends with status 0.
The sequence on SIGTERM (or Ctrl-C):

1. stop accepting connections; close idle keep-alive connections;
2. let in-flight requests finish, for up to ``shutdown_request_timeout_s``, then cancel them;
3. the app's lifespan shutdown (:meth:`shared.app.Runtime.stop`): consumers finish the event
   at hand and commit their offsets, the outbox relay sends every committed event — within
   ``shutdown_drain_timeout_s`` — then the producer and database close;
4. exit 0 (3 when the app failed to start).

Logs: uvicorn's own loggers go through the part's handler (JSON unless ``log_json`` is off),
so every line of a part's output is one JSON object.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator

import uvicorn

from shared.logging import configure_logging
from shared.parts import Part, load
from shared.settings import RapportSettings

__all__ = ["STARTUP_FAILURE", "serve"]

STARTUP_FAILURE = 3


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # uvicorn re-raises the captured signals once it has shut down; we have
                # shut down in order, so the signal has done its job.
                self._captured_signals.clear()


def serve(part: Part, *, host: str | None = None, port: int | None = None) -> int:
    """Serve ``part`` until a signal stops it; returns the process exit status."""
    settings: RapportSettings = load(part.settings)()
    configure_logging(part.name, settings.log_level, json_logs=settings.log_json)
    config = uvicorn.Config(
        part.app,
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,  # RequestContextMiddleware logs requests and times them
        log_config=None,  # keep the handler configured above
        timeout_graceful_shutdown=math.ceil(settings.shutdown_request_timeout_s),
        server_header=False,
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
