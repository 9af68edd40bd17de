"""``rapport``: the one command-line tool for everyday jobs.

rapport run              start the dev stack (embedded infra unless configured) until Ctrl-C
rapport serve PART       run one part (gateway, customer360, …); SIGTERM drains it, exit 0
rapport migrate          apply every part's migrations
rapport token            mint a development access token for the gateway (--role sales…)
rapport internal-token   mint an internal token to call a service directly (development)
rapport asyncapi         print the AsyncAPI document of Rapport's events
rapport backup / restore per-schema pg_dump / pg_restore of every part (or --part …)
rapport outbox status    events each part's outbox still holds, and the oldest one's age
rapport dlq list|replay  dead letters of a consumer group; send them back to their topic
rapport kafka            run a single-node Apache Kafka (KRaft; jars fetched with Maven)
rapport kafka topics ensure   create Rapport's topics (and dead-letter topics) if missing
rapport seed --demo      fill a running stack with demo data through its public API
rapport import FILE      import customers from CSV/NDJSON through the public API
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

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
    from pydantic import ValidationError

    from shared.ops.serve import STARTUP_FAILURE, serve
    from shared.parts import part

    try:
        return serve(part(args.part), host=args.host, port=args.port)
    except ValidationError as exc:
        print(f"rapport serve {args.part}: invalid configuration:\n{exc}", file=sys.stderr)
        return STARTUP_FAILURE


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


def _backup(args: argparse.Namespace) -> int:
    from shared.ops.backup import BackupError, backup

    try:
        manifest = backup(Path(args.out), parts=args.part, url=args.url)
    except BackupError as exc:
        print(f"rapport backup: {exc}", file=sys.stderr)
        return 2
    for entry in manifest["parts"]:
        rows = sum(entry["tables"].values())
        print(
            f"  {entry['part']:<13} {entry['file']:<20} {entry['bytes']:>10,} bytes {rows:>9,} rows"
        )
    print(f"rapport: backup written to {args.out}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from shared.ops.backup import BackupError, restore

    try:
        entries = restore(Path(args.backup), parts=args.part, url=args.url, replace=args.replace)
    except BackupError as exc:
        print(f"rapport restore: {exc}", file=sys.stderr)
        return 2
    for entry in entries:
        print(f"  {entry['part']:<13} {sum(entry['tables'].values()):>9,} rows restored")
    print("rapport: restore complete; row counts match the backup")
    return 0


def _outbox_status(args: argparse.Namespace) -> int:
    from shared.ops.outbox import outbox_status

    statuses = asyncio.run(outbox_status(args.part, args.url))
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in statuses], indent=2))
    else:
        print(f"{'part':<13} {'backlog':>8} {'oldest (s)':>11}  topics")
        for s in statuses:
            topics = s.error or ", ".join(f"{t}: {n}" for t, n in s.topics.items()) or "-"
            print(f"{s.part:<13} {s.backlog:>8} {s.oldest_age_s:>11.1f}  {topics}")
    return 1 if any(s.error for s in statuses) else 0


def _dlq(args: argparse.Namespace) -> int:
    from shared.ops.dlq import list_dead_letters, replay_dead_letters

    settings = RapportSettings()
    groups = [args.group] if args.group else [p.name for p in PARTS]
    if args.dlq_command == "replay":
        if not args.group:
            print("rapport dlq replay: --group is required", file=sys.stderr)
            return 2
        ids = set(args.event_id) if args.event_id else None
        sent = asyncio.run(replay_dead_letters(settings, args.group, event_ids=ids))
        for d in sent:
            print(f"  replayed {d.event_type} {d.event_id} → {d.original_topic}")
        print(f"rapport: {len(sent)} dead letter(s) of {args.group} replayed")
        return 0
    rows = []
    for group in groups:
        for d in asyncio.run(list_dead_letters(settings, group)):
            if args.all or not d.replayed:
                rows.append(d)
    if args.json:
        keep = ("group", "partition", "offset", "key", "event_type", "event_id", "error",
                "failed_at", "original_topic", "replayed")  # fmt: skip
        print(json.dumps([{k: getattr(d, k) for k in keep} for d in rows], indent=2))
        return 0
    for d in rows:
        mark = " (replayed)" if d.replayed else ""
        print(f"{d.group} {d.partition}@{d.offset} {d.event_type} {d.event_id} {d.failed_at}{mark}")
        print(f"    {d.error[:200]}")
    print(f"rapport: {len(rows)} dead letter(s)")
    return 0


def _topics_ensure(args: argparse.Namespace) -> int:
    from shared.events import TOPICS, dead_letter_topic
    from shared.messaging import ensure_topics

    settings = RapportSettings()
    wanted = [*TOPICS, *(dead_letter_topic(p.name) for p in PARTS)]
    created = asyncio.run(
        ensure_topics(settings, wanted, replication_factor=args.replication_factor)
    )
    for topic in wanted:
        print(f"  {topic:<32} {'created' if topic in created else 'exists'}")
    print(
        f"rapport: {len(created)} topic(s) created with {settings.kafka_topic_partitions} "
        "partitions (existing topics are left as they are)"
    )
    return 0


def _seed(args: argparse.Namespace) -> int:
    import httpx

    from shared.ops.seed import SeedError, seed_demo

    if not args.demo:
        print("rapport seed: only --demo is available", file=sys.stderr)
        return 2
    token = args.token
    if token is None:
        settings = load("gateway.config:Settings")()
        try:
            token = load("gateway.auth.dev:mint_dev_token")(
                settings, role="admin", subject="demo-seed"
            )
        except (ValueError, RuntimeError) as exc:
            print(f"rapport seed: {exc}; pass --token", file=sys.stderr)
            return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
            report = seed_demo(client)
    except (SeedError, httpx.HTTPError) as exc:
        print(f"rapport seed: {exc}", file=sys.stderr)
        return 1
    for kind in ("customers", "products", "orders", "interactions", "tickets"):
        print(f"  {kind:<13} {report.created[kind]:>4} created {report.existing[kind]:>4} existed")
    print(f"rapport: demo data in place; explore it at {args.url}/docs")
    return 0


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
    kafka = commands.add_parser("kafka", help="run Apache Kafka (KRaft) until Ctrl-C; topics")
    kafka.add_argument("--port", type=int, default=9092)
    kafka.set_defaults(func=_kafka)
    kafka_commands = kafka.add_subparsers(dest="kafka_command")
    topics = kafka_commands.add_parser("topics", help="manage Rapport's topics")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True)
    ensure = topics_commands.add_parser("ensure", help="create missing topics (idempotent)")
    ensure.add_argument("--replication-factor", type=int, default=None)
    ensure.set_defaults(func=_topics_ensure)
    for name, helptext in (("backup", "dump every part's schema"), ("restore", "restore a backup")):
        cmd = commands.add_parser(name, help=helptext)
        if name == "backup":
            cmd.add_argument("--out", required=True, help="directory for the dumps and manifest")
            cmd.set_defaults(func=_backup)
        else:
            cmd.add_argument("backup", help="directory written by `rapport backup`")
            cmd.add_argument("--replace", action="store_true", help="drop existing schemas first")
            cmd.set_defaults(func=_restore)
        cmd.add_argument("--part", action="append", help="repeatable; default: every part")
        cmd.add_argument("--url", help="one database URL for every part (default: settings)")
    outbox = commands.add_parser("outbox", help="the transactional outboxes")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    status = outbox_commands.add_parser("status", help="backlog and oldest age per part")
    status.add_argument("--part", action="append")
    status.add_argument("--url", help="one database URL for every part (default: settings)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_outbox_status)
    dlq = commands.add_parser("dlq", help="dead-letter topics (rapport.dlq.<group>)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="dead letters not replayed yet")
    dlq_list.add_argument("--group", help="consumer group (a part's name); default: all")
    dlq_list.add_argument("--all", action="store_true", help="include replayed ones")
    dlq_list.add_argument("--json", action="store_true")
    dlq_list.set_defaults(func=_dlq)
    replay = dlq_commands.add_parser("replay", help="send dead letters back to their topic")
    replay.add_argument("--group", required=True)
    replay.add_argument("--event-id", action="append", help="repeatable; default: all pending")
    replay.set_defaults(func=_dlq)
    commands.add_parser("asyncapi", help="print the AsyncAPI document").set_defaults(func=_asyncapi)
    seed = commands.add_parser("seed", help="fill a running stack with demo data (public API)")
    seed.add_argument("--demo", action="store_true", help="the demo dataset (required)")
    seed.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    seed.add_argument("--token", help="an admin bearer token (default: mint a dev token)")
    seed.set_defaults(func=_seed)
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
