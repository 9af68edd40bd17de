"""Tests for the dev-stack process managers (real processes, no mocks).

They start actual PostgreSQL / Tansu / Apache Kafka children under ``tmp_path`` and check
what the rest of the test suite relies on: the services answer, data survives restarts and
crashes where promised, and no process outlives its owner, even one killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.devstack import (
    ApacheKafka,
    EmbeddedPostgres,
    ServiceStartError,
    TansuBroker,
)
from shared.devstack.postgres import SYSTEM_USER

REPO_ROOT = Path(__file__).resolve().parents[2]


def live_processes_mentioning(marker: str) -> list[psutil.Process]:
    """Non-zombie processes whose command line contains *marker*.

    Zombies are skipped: they are already dead, and in some containers PID 1 never reaps
    the orphans it inherits (e.g. PostgreSQL backends whose postmaster was SIGKILLed).
    """
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if proc.pid == os.getpid():
            continue
        if marker in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _pg_select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


async def _produce(bootstrap: str, topic: str, value: bytes, *, idempotent: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=idempotent)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        return record.value
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------


def test_postgres_start_query_restart_stop(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    with pg:
        assert pg.is_running()
        assert pg.host == "127.0.0.1"
        assert pg.dsn() == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        assert pg.sqlalchemy_url("app") == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/app"
        assert pg.psql("SELECT 1").strip() == "1"
        assert asyncio.run(_pg_select_one(pg.dsn())) == 1

        pg.create_database("app")
        pg.create_database("app")  # idempotent
        pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart');", "app")

        port, pid = pg.port, pg.pid
        pg.restart()
        assert pg.is_running()
        assert pg.port == port
        assert pg.pid != pid
        assert pg.psql("SELECT v FROM kept", "app").strip() == "before restart"

        pg.drop_database("app")
        pg.drop_database("app")  # idempotent
        assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'app'").strip() == "0"

    assert not pg.is_running()
    assert live_processes_mentioning(str(tmp_path)) == []


def test_postgres_survives_kill(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    try:
        pg.psql("CREATE TABLE crash (v int); INSERT INTO crash VALUES (7);")
        pid = pg.pid
        assert pid is not None
        pg.kill()
        assert not pg.is_running()
        assert not pid_alive(pid)
        assert (pg.pgdata / "postmaster.pid").exists()  # a real crash leaves it behind

        pg.start()  # crash recovery
        assert pg.psql("SELECT v FROM crash").strip() == "7"
    finally:
        pg.stop()
    assert live_processes_mentioning(str(tmp_path)) == []


def test_postgres_ignores_lock_file_of_a_reused_pid(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    pg.kill()
    # After a crash in a container the old postmaster's pid often belongs to an unrelated
    # process by the next start. If that process runs as the server's user, PostgreSQL alone
    # would refuse to start ("lock file already exists").
    server_user = SYSTEM_USER if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "60"], user=server_user) as unrelated:
        try:
            pidfile = pg.pgdata / "postmaster.pid"
            lines = pidfile.read_text().split("\n")
            pidfile.write_text("\n".join([str(unrelated.pid), *lines[1:]]))
            pg.start()
            assert pg.psql("SELECT 1").strip() == "1"
        finally:
            pg.stop()
            unrelated.kill()


def test_postgres_refuses_to_start_twice_on_one_data_dir(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as first:
        second = EmbeddedPostgres(tmp_path / "pg")
        with pytest.raises(ServiceStartError, match="already running"):
            second.start()
        assert first.psql("SELECT 1").strip() == "1"


def test_postgres_start_failure_reports_log_tail(tmp_path: Path) -> None:
    class BrokenPostgres(EmbeddedPostgres):
        settings = {"shared_buffers": "not-a-size"}

    pg = BrokenPostgres(tmp_path / "pg")
    with pytest.raises(ServiceStartError, match="exited with code") as excinfo:
        pg.start()
    assert "shared_buffers" in str(excinfo.value)  # quoted from postgres.log
    assert not pg.is_running()


def test_start_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = TansuBroker(tmp_path / "tansu", port=taken.getsockname()[1])
        with pytest.raises(ServiceStartError, match="already in use"):
            broker.start()


# --------------------------------------------------------------------------------------
# Tansu
# --------------------------------------------------------------------------------------


def test_tansu_produce_consume(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path / "tansu")
    assert TansuBroker.supports_idempotence is False
    with broker:
        pid = broker.pid
        assert pid is not None
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        topic = f"devstack-{uuid.uuid4().hex[:8]}"
        asyncio.run(_produce(broker.bootstrap_servers, topic, b"hello tansu", idempotent=False))
        assert asyncio.run(_consume_one(broker.bootstrap_servers, topic)) == b"hello tansu"
    assert not broker.is_running()
    assert not pid_alive(pid)
    assert live_processes_mentioning(f"127.0.0.1:{broker.port}") == []


# --------------------------------------------------------------------------------------
# Apache Kafka
# --------------------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.skipif(
    not ApacheKafka.available(), reason="Apache Kafka needs `java` and `mvn` on PATH"
)
def test_apache_kafka_restart_keeps_messages(tmp_path: Path) -> None:
    kafka = ApacheKafka(tmp_path / "kafka")
    assert ApacheKafka.supports_idempotence is True
    with kafka:
        topic = f"devstack-{uuid.uuid4().hex[:8]}"
        asyncio.run(_produce(kafka.bootstrap_servers, topic, b"durable", idempotent=True))
        port = kafka.port
        kafka.restart()
        assert kafka.port == port
        assert asyncio.run(_consume_one(kafka.bootstrap_servers, topic)) == b"durable"
    assert not kafka.is_running()
    assert live_processes_mentioning(str(tmp_path)) == []  # the JVM's cmdline names work_dir


# --------------------------------------------------------------------------------------
# No orphans
# --------------------------------------------------------------------------------------


def test_service_started_from_a_short_lived_thread_outlives_it(tmp_path: Path) -> None:
    # PR_SET_PDEATHSIG fires when the *thread* that forked the child exits; the managers
    # fork from a long-lived spawner thread so asyncio.to_thread(...start) is safe.
    broker = TansuBroker(tmp_path / "tansu")
    starter = threading.Thread(target=broker.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.5)
        assert broker.is_running()
        broker.restart()
        assert broker.is_running()
    finally:
        broker.stop()


_OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    from shared.devstack import EmbeddedPostgres, TansuBroker

    base = Path(sys.argv[1])
    pg = EmbeddedPostgres(base / "pg")
    pg.start()
    broker = TansuBroker(base / "tansu")
    broker.start()
    print("ready", pg.pid, broker.pid, flush=True)
    time.sleep(600)
    """
)


def test_children_die_with_a_sigkilled_owner(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(_OWNER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (tmp_path / "owner.log").open("wb") as err:
        owner = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO_ROOT,
            env=env,
        )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline().decode()
        assert line.startswith("ready"), (tmp_path / "owner.log").read_text()
        child_pids = [int(pid) for pid in line.split()[1:]]
        assert all(pid_alive(pid) for pid in child_pids)
        assert live_processes_mentioning(str(tmp_path / "pg"))  # the postmaster

        owner.send_signal(signal.SIGKILL)
        owner.wait()

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [p for p in child_pids if pid_alive(p)]
            left += [p.pid for p in live_processes_mentioning(str(tmp_path))]
            if not left:
                break
            time.sleep(0.1)
        assert left == [], f"processes outlived their SIGKILLed owner: {left}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        # The dead owner never cleaned up its (empty) unix-socket directory under /tmp.
        with contextlib.suppress(OSError):
            EmbeddedPostgres(tmp_path / "pg").socket_dir.rmdir()


def test_a_stand_in_app_runs_under_plain_uvicorn(tmp_path: Path) -> None:
    """Benchmarks run stand-ins (a trivial upstream) beside the real parts; ``rapport serve``
    knows only the parts, so a stand-in must not be launched through it."""
    from shared.devstack.process import free_port
    from shared.parts import Part
    from shared.stack import PartProcess

    stand_in = Part("trivial", "tests.bench.gateway:trivial_app", "", "", free_port())
    process = PartProcess(stand_in, tmp_path, dict(os.environ))
    process.start()
    try:
        assert process.ready()
        assert (
            "-m uvicorn --factory tests.bench.gateway:trivial_app" in process.log_path.read_text()
        )
    finally:
        process.stop()
