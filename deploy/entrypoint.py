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

USAGE = __doc__.split("\n\n")[1]


def serve_command(part_name: str) -> list[str]:
    """``rapport serve PART`` on the part's host and port: it validates the settings (exit 3
    with the reason), runs uvicorn, and on SIGTERM stops taking requests, lets in-flight ones
    finish, commits its consumers, flushes the outbox and exits 0 (see shared/cli.py)."""
    from shared.parts import load, part
    from shared.settings import load_settings

    p = part(part_name)
    settings = load_settings(load(p.settings))
    return [
        sys.executable,
        "-m",
        "shared.cli",
        "serve",
        p.name,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
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
            os.execv(cmd[0], cmd)  # noqa: S606 - `rapport serve` becomes PID 1 and gets SIGTERM
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
