"""Start real peer programs on loopback for tests, and clean them up completely.

In CI (``CI`` true) a missing peer program is a failure, not a skip: a green run must mean the
peer-backed tests really ran. Locally it skips with a reason that tests/conftest.py counts in the
run's closing summary together with the command that installs the missing packages.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from . import debian

IN_CI = debian.in_ci()
# The skip reasons' prefixes that the closing summary (tests/conftest.py) counts.
PEER_MISSING = "peer missing:"
CAPTURE_DENIED = "capture not permitted:"
LET_CAPTURE = ("run the tests as root, or let this user capture: sudo dpkg-reconfigure wireshark-common "
               "(answer Yes) && sudo usermod -aG wireshark $USER")


def _unavailable(message: str) -> NoReturn:
    """Fail in CI (a green run must mean the test ran), skip elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need(peer: str) -> str:
    """The path of ``peer`` (a program, or a file glob of .ci/debian-packages.txt); skip locally, fail in CI."""
    path = debian.find(peer)
    if path is None:
        _unavailable(f"{PEER_MISSING} {peer} (Debian package {debian.package_of(peer)})")
    return path


@functools.cache
def _capture_error(dumpcap: str) -> str:
    """Why dumpcap cannot open lo for capture as this user ('' when it can): its first error line."""
    done = subprocess.run([dumpcap, "-L", "-i", "lo"], capture_output=True, text=True, timeout=30, check=False)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no error text"])[0]


def need_capture() -> str:
    """dumpcap, allowed to capture on lo (root, or a user Debian's wireshark-common lets capture)."""
    dumpcap = need("dumpcap")
    error = _capture_error(dumpcap)
    if error:
        _unavailable(f"{CAPTURE_DENIED} dumpcap cannot capture on lo ({error}): {LET_CAPTURE}")
    return dumpcap


def without_privilege(argv: Sequence[str], *capabilities: str) -> list[str]:
    """``argv`` run without ``capabilities`` (e.g. ``dac_override``): as root, under setpriv; else as is.

    Root keeps its uid (so the code under test stays readable wherever the tree lives) but the
    capabilities leave its inheritable and bounding sets, so neither the program nor what it
    executes can use them: what an unprivileged user meets. Without root they are absent anyway.
    """
    if os.geteuid() != 0:
        return list(argv)
    drop = ",".join(f"-{cap}" for cap in capabilities)
    return [need("setpriv"), f"--inh-caps={drop}", f"--bounding-set={drop}", *argv]


def without_file_privilege(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that file modes bind it (no CAP_DAC_OVERRIDE, no CAP_DAC_READ_SEARCH)."""
    return without_privilege(argv, "dac_override", "dac_read_search")


T = TypeVar("T")


def eventually(what: str | Callable[[], str], predicate: Callable[[], T], timeout: float = 10.0,
               period: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what`` after ``timeout``.

    ``what`` may be a callable, evaluated only on failure, so the message can show the state then.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(period)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago (for peers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on ``port`` (or fail with context)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def kill_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Terminate a peer started with ``start_new_session=True`` and its whole process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # grandchildren left behind by a dead leader


@contextlib.contextmanager
def started(argv: Sequence[str], log: Path, cwd: Path | None = None,
            env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL,
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run a peer in its own session with output to ``log``; kill its process group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=stdin,
                                cwd=cwd, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        kill_group(proc)


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (scans /proc), to assert nothing was left behind."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        found += kids
        frontier += kids
    return found


@contextlib.contextmanager
def socket_peer(behaviour: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A loopback server that runs ``behaviour`` on every connection (after the TLS handshake when
    ``tls`` is given), each in its own thread; yields its port. Stopped (and its port closed) on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(30)
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            if not stop.is_set():
                behaviour(conn)
        conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()
