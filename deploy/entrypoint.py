"""The container's entry point: one image runs any part of Rapport by command.

    serve PART            the gateway or a service under uvicorn (PART: gateway, customer360,
                          interactions, orders, segmentation), on RAPPORT_HOST:RAPPORT_PORT
    migrate [PART ...]    apply the migrations of the given parts (default: all), then exit
    healthcheck           exit 0 when the part in this container answers GET /health
    anything else         handed to the ``rapport`` CLI (``token``, ``asyncapi``, ``import``…)

``rapport run`` and ``rapport migrate`` start the embedded development infrastructure, which
the image does not ship, so serving and migrating are done here with the same code paths
(``shared.parts``, ``shared.migrate``). The settings of a part are loaded before anything
else: an invalid configuration (or development secrets in production) stops the container
with a message naming the environment variables, exit status 2, instead of a traceback.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Sequence

#: Seconds uvicorn gives in-flight requests after SIGTERM; keep it below the orchestrator's
#: grace period (compose ``stop_grace_period``, Kubernetes ``terminationGracePeriodSeconds``).
GRACEFUL_SHUTDOWN_S = 20

USAGE = __doc__.split("\n\n")[1]


def serve_command(part_name: str) -> list[str]:
    """The uvicorn command line serving one part, after validating its settings."""
    from shared.parts import load, part
    from shared.settings import load_settings

    p = part(part_name)
    settings = load_settings(load(p.settings))
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        p.app,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--no-access-log",
        "--proxy-headers",
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SHUTDOWN_S),
    ]


def migrate(part_names: Sequence[str]) -> None:
    from shared.migrate import upgrade
    from shared.parts import PARTS, load, part
    from shared.settings import load_settings

    for name in part_names or [p.name for p in PARTS]:
        load_settings(load(part(name).settings))  # refuse a bad DATABASE_URL before alembic
        upgrade(name)
        print(f"rapport: {name} migrated", flush=True)


def healthcheck(port: int | None = None, timeout: float = 3.0) -> bool:
    port = port or int(os.environ.get("RAPPORT_PORT", "8000"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: Sequence[str]) -> int:
    from shared.settings import ConfigurationError

    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if argv else 2
    command, args = argv[0], list(argv[1:])
    try:
        if command == "serve":
            if len(args) != 1:
                print("usage: serve PART", file=sys.stderr)
                return 2
            cmd = serve_command(args[0])
            os.execv(cmd[0], cmd)  # noqa: S606 - uvicorn becomes PID 1 and gets SIGTERM
        if command == "migrate":
            migrate(args)
            return 0
        if command == "healthcheck":
            return 0 if healthcheck() else 1
    except ConfigurationError as exc:
        print(f"rapport: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # unknown part
        print(f"rapport: {exc.args[0]}", file=sys.stderr)
        return 2
    from shared.cli import main as rapport

    return rapport(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
