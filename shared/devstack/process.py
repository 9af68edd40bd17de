"""Shared plumbing for the dev-stack child processes (PostgreSQL, Tansu, Apache Kafka).

The three managers in this package differ only in *what* they run and *how* to tell that the
service answers. Everything about owning a child process's lifetime lives here, once:

* **Never orphan a child.** Every service is started with ``start_new_session=True`` so a
  terminal Ctrl-C (SIGINT to the foreground process group) reaches only our Python process,
  which then stops the services in order instead of all of them racing to die at once. A
  new session also means the child no longer dies with our terminal, so on Linux we
  additionally set ``PR_SET_PDEATHSIG`` in a ``preexec_fn``: if our process dies in any way
  (including SIGKILL, where no Python cleanup can run) the kernel signals the child.

  Two details make that robust, both verified on Linux as root:

  - CPython's ``_posixsubprocess`` applies ``setsid``/``setgroups``/``setregid``/``setreuid``
    *before* it calls ``preexec_fn`` (the preexec function observes the target uid). The
    kernel clears the parent-death signal on credential changes, so the order matters: a
    death signal set before the uid switch would be silently dropped, but ours is set after
    it and survives the ``execve`` of the (non-setuid) server binary. This is what makes it
    work for PostgreSQL, which runs as the unprivileged ``embedded_postgres`` user when we
    are root. The parent-death signal is delivered by the kernel with the dying parent's
    credentials; root may signal any process, and a non-root parent runs the service as
    itself, so the permission check always passes.
  - ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the
    process. A service started from a short-lived thread (``asyncio.to_thread``, an executor
    that is shut down) would be killed as soon as that thread ends. Every ``Popen`` therefore
    runs on one long-lived daemon thread (:class:`_Spawner`), which only disappears together
    with the process. The same holds at interpreter exit: the services get their death
    signal when the process is finally gone, so no ``atexit`` handler is needed.

  The preexec function also closes the fork/prctl race: if our process died before the
  signal was armed, the child notices (``getppid`` changed) and exits before ``exec``.

* **Stop gracefully, then hard.** ``stop()`` sends the service's own graceful-shutdown signal,
  waits up to a per-service timeout, and then SIGKILLs the whole process group (PostgreSQL
  backends are in it too). ``kill()`` is the chaos-test crash: SIGKILL to the group at once.

* **Start means "answers".** ``start()`` polls a real protocol handshake (implemented by each
  manager, see :meth:`ManagedProcess._probe`) until it succeeds, failing with
  :class:`ServiceStartError` that quotes the tail of the service's log file.

The Kafka wire-protocol readiness probe is shared by Tansu and Apache Kafka and lives here
too (:func:`probe_kafka_broker`): a raw ApiVersions + Metadata exchange over one socket,
which is synchronous, dependency-free and far cheaper than starting an aiokafka client.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"

_PR_SET_PDEATHSIG = 1


class ServiceStartError(RuntimeError):
    """A dev-stack service failed to start or did not answer in time."""


class ProbeError(Exception):
    """A readiness probe reached the service, but it is not ready (yet)."""


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on *host* that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when *port* can be bound (SO_REUSEADDR, so TIME_WAIT leftovers don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 40) -> str:
    """The last *lines* lines of a (log) file, or a placeholder if it can't be read."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly *size* bytes (for the wire-protocol readiness probes)."""
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer during handshake")
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------------------
# Kafka wire-protocol readiness probe (Tansu and Apache Kafka)
# --------------------------------------------------------------------------------------

_API_METADATA = 3
_API_VERSIONS = 18


def _kafka_request(
    sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes
) -> bytes:
    """Send one non-flexible (header v1) request and return the response after its header."""
    client_id = b"rapport-devstack-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    payload = header + client_id + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    response = recv_exact(sock, size)
    (got_id,) = struct.unpack(">i", response[:4])
    if got_id != correlation_id:
        raise ProbeError(f"correlation id mismatch: sent {correlation_id}, got {got_id}")
    return response[4:]


def probe_kafka_broker(host: str, port: int, *, timeout: float = 2.0) -> int:
    """Check that a Kafka-protocol broker really serves requests; return its broker count.

    Sends ApiVersions (v0, which every broker must answer) and then a Metadata request at
    the highest non-flexible version both sides support. The broker counts as ready only
    when Metadata lists at least one broker and a controller: for Apache Kafka in KRaft
    mode that means the broker has registered with the controller and is unfenced, i.e. it
    can create topics and accept produce requests. Accepting a TCP connection alone is not
    enough (the socket server binds before the broker is usable).

    Raises ``OSError`` (unreachable) or :class:`ProbeError` (reachable, not ready).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _kafka_request(sock, _API_VERSIONS, 0, 1, b"")
        error_code, count = struct.unpack(">hi", body[:6])
        if error_code != 0:
            raise ProbeError(f"ApiVersions returned error code {error_code}")
        versions: dict[int, tuple[int, int]] = {}
        for i in range(count):
            key, low, high = struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i])
            versions[key] = (low, high)
        if _API_METADATA not in versions:
            raise ProbeError("broker does not advertise the Metadata API")
        low, high = versions[_API_METADATA]
        version = min(high, 8)  # v9+ use the flexible (tagged-field) encoding
        if version < max(low, 1):
            raise ProbeError(f"no common Metadata version (broker supports {low}..{high})")

        request = struct.pack(">i", -1)  # null topic list: all topics
        if version >= 4:
            request += b"\x00"  # allow_auto_topic_creation = false
        if version >= 8:
            request += b"\x00\x00"  # include cluster/topic authorized operations = false
        body = _kafka_request(sock, _API_METADATA, version, 2, request)

    offset = 4 if version >= 3 else 0  # throttle_time_ms
    (broker_count,) = struct.unpack(">i", body[offset : offset + 4])
    offset += 4
    for _ in range(broker_count):
        offset += 4  # node_id
        (host_len,) = struct.unpack(">h", body[offset : offset + 2])
        offset += 2 + host_len + 4  # host, port
        (rack_len,) = struct.unpack(">h", body[offset : offset + 2])
        offset += 2 + max(rack_len, 0)
    if version >= 2:
        (cluster_id_len,) = struct.unpack(">h", body[offset : offset + 2])
        offset += 2 + max(cluster_id_len, 0)
    (controller_id,) = struct.unpack(">i", body[offset : offset + 4])
    if broker_count < 1:
        raise ProbeError("Metadata lists no brokers yet (broker not registered/unfenced)")
    if controller_id < 0:
        raise ProbeError("Metadata reports no active controller yet")
    return int(broker_count)


# --------------------------------------------------------------------------------------
# Spawning with a parent-death signal
# --------------------------------------------------------------------------------------

_libc_prctl: Callable[..., int] | None = None


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved once in the parent (never dlopen/dlsym in a forked child)."""
    global _libc_prctl
    if _libc_prctl is None and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.prctl
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        fn.restype = ctypes.c_int
        _libc_prctl = fn
    return _libc_prctl


def _death_signal_preexec(death_signal: int, parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` arming PR_SET_PDEATHSIG (Linux only; None elsewhere).

    It runs in the forked child after CPython's uid/gid switch (see the module docstring),
    so the credential change cannot clear it.
    """
    prctl = _prctl()
    if prctl is None:
        return None

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
        if os.getppid() != parent_pid:
            # Our parent died between fork() and prctl(): nobody would ever stop us.
            os._exit(1)

    return preexec


class _Spawner:
    """Runs every ``Popen`` on one long-lived daemon thread (PR_SET_PDEATHSIG is per-thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid = -1
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                return
            # First use, or we are a fork()ed copy of the process that had the thread.
            self._queue = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._run, args=(self._queue,), name="devstack-spawner", daemon=True
            )
            thread.start()
            self._owner_pid = os.getpid()

    @staticmethod
    def _run(
        jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ],
    ) -> None:
        while True:
            fn, future = jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def spawn(self, fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        self._ensure_thread()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._queue.put((fn, future))
        try:
            return future.result()
        except BaseException:
            # Interrupted (e.g. Ctrl-C) while waiting: don't leave a child nobody tracks.
            future.add_done_callback(_kill_spawned)
            raise


def _kill_spawned(future: Future[subprocess.Popen[bytes]]) -> None:
    if not future.cancelled() and future.exception() is None:
        _kill_group(future.result())


_spawner = _Spawner()


def spawn_child(
    args: Sequence[str],
    *,
    log_path: Path,
    death_signal: signal.Signals,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start *args* in its own session with a parent-death signal; output appended to *log_path*.

    Also usable for one-shot helper commands that must not outlive us (initdb, format).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _death_signal_preexec(int(death_signal), os.getpid())
    argv = list(args)
    child_env = dict(env) if env is not None else None

    def popen() -> subprocess.Popen[bytes]:
        # Runs on the spawner thread; the log is opened here so that its descriptor stays
        # valid until Popen has handed it to the child, even if our caller is interrupted.
        with log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== [{stamp}] rapport devstack: exec {' '.join(argv)}\n".encode())
            log.flush()
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=child_env,
                user=user,
                start_new_session=True,
                preexec_fn=preexec,
                close_fds=True,
            )

    return _spawner.spawn(popen)


def run_child(
    args: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | int | None = None,
    death_signal: signal.Signals = signal.SIGKILL,
) -> None:
    """Run a one-shot helper to completion (killed with us); raise with the log tail on failure."""
    proc = spawn_child(
        args, log_path=log_path, death_signal=death_signal, cwd=cwd, env=env, user=user
    )
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ServiceStartError(
            f"{what} did not finish within {timeout:.0f}s: {' '.join(args)}\n"
            f"--- last lines of {log_path} ---\n{tail(log_path)}"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    if rc != 0:
        raise ServiceStartError(
            f"{what} failed with exit code {rc}: {' '.join(args)}\n"
            f"--- last lines of {log_path} ---\n{tail(log_path)}"
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads its own session) and reap it.

    Only while the leader is unreaped: its pid, and so the group id, cannot have been reused.
    A leader that already exited on its own leaves nothing of ours to kill (PostgreSQL
    backends exit by themselves when the postmaster dies).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait()


# --------------------------------------------------------------------------------------
# The managed-process base class
# --------------------------------------------------------------------------------------


class ManagedProcess(abc.ABC):
    """A long-running service child process with start/stop/kill/restart and a readiness probe.

    Subclasses set the class attributes and implement :meth:`_command` and :meth:`_probe`;
    they may override :meth:`_prepare` (one-time setup before every spawn, e.g. initdb),
    :meth:`_spawn_env`, :meth:`_spawn_user`, :meth:`_spawn_cwd` and :meth:`_after_exit`.
    """

    #: Human-readable service name used in log and error messages.
    service_name: ClassVar[str] = "service"
    #: Signal that asks the service to shut down gracefully.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Signal the kernel sends the service if our process dies (PR_SET_PDEATHSIG).
    death_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Seconds to wait for a graceful stop before SIGKILL.
    stop_timeout: ClassVar[float] = 15.0
    #: Seconds to wait for the service to answer after spawning it.
    start_timeout: ClassVar[float] = 60.0
    #: Interface every service binds to.
    host: ClassVar[str] = LOCALHOST

    def __init__(self, work_dir: Path, port: int | None = None) -> None:
        self._work_dir = Path(work_dir).resolve()
        self._port = port if port is not None else free_port(self.host)
        self._proc: subprocess.Popen[bytes] | None = None

    # -- properties ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the service listens on (fixed for the life of this object)."""
        return self._port

    @property
    def work_dir(self) -> Path:
        """Directory holding the service's data and log files."""
        return self._work_dir

    @property
    def log_path(self) -> Path:
        """File receiving the service's stdout and stderr."""
        return self._work_dir / f"{self.service_name}.log"

    @property
    def pid(self) -> int | None:
        """PID of the running service process, or None."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    # -- hooks --------------------------------------------------------------------------

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The argv of the service process."""

    @abc.abstractmethod
    def _probe(self) -> None:
        """One readiness attempt: return when the service answers; raise OSError/ProbeError."""

    def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Set-up before every spawn (create/initialise data directories...)."""

    def _ports(self) -> list[int]:
        """Ports that must be free before spawning."""
        return [self._port]

    def _spawn_env(self) -> Mapping[str, str] | None:
        return None

    def _spawn_user(self) -> str | None:
        return None

    def _spawn_cwd(self) -> Path | None:
        return self._work_dir

    def _diagnostic_logs(self) -> list[Path]:
        """Log files quoted in a startup error."""
        return [self.log_path]

    def _after_exit(self) -> None:  # noqa: B027 - optional hook
        """Clean-up once the process is gone (stopped or killed)."""

    # -- lifecycle ----------------------------------------------------------------------

    def is_running(self) -> bool:
        """True while the service process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the service and block until it answers (no-op when already running)."""
        if self.is_running():
            return
        if self._proc is not None:  # it died on its own since the last call: tidy up first
            self._reap(self._proc)
        started = time.monotonic()
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        busy = [p for p in self._ports() if not port_is_free(p, self.host)]
        if busy:
            raise ServiceStartError(
                f"cannot start {self.service_name}: port(s) {busy} on {self.host} already in use"
            )
        logger.info("starting %s on %s:%d", self.service_name, self.host, self._port)
        self._proc = spawn_child(
            self._command(),
            log_path=self.log_path,
            death_signal=self.death_signal,
            cwd=self._spawn_cwd(),
            env=self._spawn_env(),
            user=self._spawn_user(),
        )
        try:
            self._wait_ready(started)
        except BaseException:
            self.kill()
            raise
        logger.info(
            "%s ready on %s:%d (pid %d) in %.2fs",
            self.service_name,
            self.host,
            self._port,
            self._proc.pid,
            time.monotonic() - started,
        )

    def _wait_ready(self, started: float) -> None:
        proc = self._proc
        assert proc is not None
        deadline = started + self.start_timeout
        last_problem = "no answer yet"
        while True:
            rc = proc.poll()
            if rc is not None:
                raise ServiceStartError(
                    f"{self.service_name} exited with code {rc} during startup"
                    + self._log_excerpt()
                )
            try:
                self._probe()
            except (OSError, ProbeError, struct.error) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if proc.poll() is None:  # the answer came from our process, not a stray one
                    return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{self.service_name} did not answer on {self.host}:{self._port} within "
                    f"{self.start_timeout:.0f}s (last probe: {last_problem})" + self._log_excerpt()
                )
            time.sleep(0.05)

    def _log_excerpt(self) -> str:
        parts = [
            f"\n--- last lines of {path} ---\n{tail(path)}" for path in self._diagnostic_logs()
        ]
        return "".join(parts)

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop gracefully (the service's stop signal), SIGKILL after *timeout* seconds.

        Returns the exit status (negative: the signal that ended it), or None when the
        service was not started."""
        proc = self._proc
        if proc is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        if proc.poll() is None:
            logger.info("stopping %s (pid %d)", self.service_name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %d) did not stop within %.0fs; sending SIGKILL",
                    self.service_name,
                    proc.pid,
                    timeout,
                )
        self._reap(proc)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the service and everything in its process group now (simulated crash)."""
        proc = self._proc
        if proc is None:
            return
        logger.info("killing %s (pid %d)", self.service_name, proc.pid)
        self._reap(proc)

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGKILL whatever is left in the group (a no-op after a clean exit), then reap.
        _kill_group(proc)
        self._proc = None
        self._after_exit()

    def restart(self) -> None:
        """Stop gracefully and start again with the same data and port(s)."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"{type(self).__name__}({str(self._work_dir)!r}, port={self._port}, {state})"


__all__ = [
    "LOCALHOST",
    "ManagedProcess",
    "ProbeError",
    "ServiceStartError",
    "free_port",
    "port_is_free",
    "probe_kafka_broker",
    "recv_exact",
    "run_child",
    "spawn_child",
    "tail",
]
