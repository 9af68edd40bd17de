"""``rapport``: the one command-line tool for everyday jobs.

rapport run              start the dev stack (embedded infra unless configured) until Ctrl-C
rapport serve PART       run one part (gateway, customer360, …); SIGTERM drains it, exit 0
rapport migrate          apply every part's migrations
rapport token            mint a development access token for the gateway (--role sales…)
rapport internal-token   mint an internal token to call a service directly (development)
rapport asyncapi         print the AsyncAPI document of Rapport's events
rapport kafka            run a single-node Apache Kafka (KRaft; jars fetched with Maven)
rapport import FILE      import customers from CSV/NDJSON through the public API
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence

from shared.auth import Principal, mint_internal_token
from shared.events import asyncapi_document
from shared.migrate import upgrade_all
from shared.parts import PARTS, load
from shared.settings import Environment, RapportSettings

__all__ = ["main"]


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so a long-running command can stop in order."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _run(_: argparse.Namespace) -> int:
    from shared.stack import DevStack

    stop = _stop_on_signals()
    started = time.monotonic()
    stack = DevStack()
    try:
        print("rapport: starting infrastructure…", flush=True)
        stack.start_infrastructure()
        if stop.is_set():
            return 130
        print("rapport: migrating…", flush=True)
        stack.migrate()
        print("rapport: starting gateway and services…", flush=True)
        stack.start_parts()
        not_ready = stack.wait_ready(timeout=60)
        ready = len(stack.parts) - len(not_ready)
        print(f"rapport: {ready}/{len(stack.parts)} ready in {time.monotonic() - started:.1f}s")
        for process in stack.parts:
            print(
                f"  {process.part.name:<13} http://127.0.0.1:{process.port}   log {process.log_path}"
            )
        if stack.postgres is not None:
            print(f"  {'postgres':<13} {stack.postgres.dsn('rapport')}")
        if stack.broker is not None:
            print(f"  {'kafka (tansu)':<13} {stack.broker.bootstrap_servers}")
        if not_ready:
            print(f"rapport: not ready: {', '.join(not_ready)} (see their logs)", file=sys.stderr)
        print("rapport: press Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):
            dead = [p.part.name for p in stack.parts if not p.is_running()]
            if dead:
                print(f"rapport: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        print("rapport: stopping…", flush=True)
        stack.stop()
        print("rapport: stopped", flush=True)


def _serve(args: argparse.Namespace) -> int:
    from shared.ops.serve import serve
    from shared.parts import part

    return serve(part(args.part), host=args.host, port=args.port)


def _migrate(_: argparse.Namespace) -> int:
    from shared.stack import DevStack

    stack = DevStack()
    try:
        stack.start_database()
        upgrade_all()
    finally:
        stack.stop()
    print("rapport: migrations applied")
    return 0


def _token(args: argparse.Namespace) -> int:
    # The gateway owns its tokens; the CLI is the composition root and loads it by path.
    settings = load("gateway.config:Settings")()
    mint = load("gateway.auth.dev:mint_dev_token")
    try:
        print(
            mint(
                settings,
                role=args.role,
                subject=args.subject,
                team=args.team,
                scope_mode=args.scope_mode,
                ttl_s=args.ttl,
            )
        )
    except (ValueError, RuntimeError) as exc:
        print(f"rapport token: {exc}", file=sys.stderr)
        return 2
    return 0


def _internal_token(args: argparse.Namespace) -> int:
    settings = RapportSettings()
    if settings.environment == Environment.PRODUCTION:
        print("refusing to mint tokens in production", file=sys.stderr)
        return 2
    principal = Principal(subject=args.subject, scopes=frozenset(args.scope or ["*"]))
    print(mint_internal_token(principal, settings.internal_token_secret, ttl_s=args.ttl))
    return 0


def _kafka(args: argparse.Namespace) -> int:
    from shared.devstack import ApacheKafka
    from shared.stack import ROOT

    if not ApacheKafka.available():
        print("rapport kafka needs java (17+) and mvn on PATH", file=sys.stderr)
        return 2
    stop = _stop_on_signals()
    kafka = ApacheKafka(ROOT / ".rapport" / "kafka", port=args.port)
    kafka.start()
    try:
        print(f"rapport: Apache Kafka {kafka.version} on {kafka.bootstrap_servers}; Ctrl-C stops")
        print(f"  export KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
        while not stop.wait(1.0):
            if not kafka.is_running():
                print("rapport: Kafka exited", file=sys.stderr)
                return 1
        return 0
    finally:
        kafka.stop()


def _asyncapi(_: argparse.Namespace) -> int:
    print(json.dumps(asyncapi_document(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rapport", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the dev stack until Ctrl-C").set_defaults(func=_run)
    serve = commands.add_parser("serve", help="run one part until SIGTERM (drains, exits 0)")
    serve.add_argument("part", choices=[p.name for p in PARTS])
    serve.add_argument("--host", default=None, help="default: the part's HOST setting")
    serve.add_argument("--port", type=int, default=None, help="default: the part's PORT setting")
    serve.set_defaults(func=_serve)
    commands.add_parser("migrate", help="apply all migrations").set_defaults(func=_migrate)
    dev = commands.add_parser("token", help="mint a development access token for the gateway")
    dev.add_argument("--role", default="admin", help="admin, sales, marketing, support, …")
    dev.add_argument("--subject", default="dev-user")
    dev.add_argument("--team", default=None)
    dev.add_argument("--scope-mode", choices=["own", "team", "all"], default=None)
    dev.add_argument("--ttl", type=int, default=3600, help="seconds")
    dev.set_defaults(func=_token)
    token = commands.add_parser("internal-token", help="mint an internal token (development)")
    token.add_argument("--subject", default="dev-user")
    token.add_argument("--scope", action="append", help="repeatable; default: all scopes")
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(func=_internal_token)
    kafka = commands.add_parser("kafka", help="run Apache Kafka (KRaft) until Ctrl-C")
    kafka.add_argument("--port", type=int, default=9092)
    kafka.set_defaults(func=_kafka)
    commands.add_parser("asyncapi", help="print the AsyncAPI document").set_defaults(func=_asyncapi)
    # customer360 owns imports; loaded by path so shared never imports a service.
    importer = commands.add_parser("import", help="import customers from a CSV/NDJSON file")
    load("services.customer360.imports.cli:add_arguments")(importer)
    importer.set_defaults(func=lambda a: load("services.customer360.imports.cli:main")(a))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
