"""The real daemon as a process (`rmxdiag serve`) for reliability tests, and what they observe of it.

The daemon's log goes to a pipe drained by a thread (RLIMIT_FSIZE applies to files, and the log
must survive the full-disk test) and is written to ``serve.log`` next to the config at the end.
Processes a test starts carry a marker in their argv, so a survivor is found wherever it was
reparented.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.peers import children_of, free_port, wait_for_port
from tests.support.reliability import Handler

SERVE = [sys.executable, "-m", "daemon.cli", "serve", "--log-level", "debug"]
TOKEN = "fault-test-token"  # noqa: S105 (a test token)


def write(path: Path, text: str) -> Path:
    """``path`` with ``text``."""
    path.write_text(text)
    return path


def secret(path: Path, content: bytes) -> Path:
    """A 0600 secret file."""
    path.write_bytes(content)
    path.chmod(0o600)
    return path


@dataclass
class Served:
    """A running `rmxdiag serve` and the log it wrote so far."""

    proc: subprocess.Popen[bytes]
    port: int
    chunks: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL (plain HTTP on loopback)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.proc.pid

    def log(self) -> str:
        """The daemon's log so far."""
        return b"".join(self.chunks).decode("utf-8", "replace")

    def alert(self, *targets: str, token: str = TOKEN) -> requests.Response:
        """POST one firing alert per target name to the webhook."""
        doc = {"version": "4", "status": "firing",
               "alerts": [{"status": "firing", "labels": {"alertname": "X", "target": t}} for t in targets]}
        return requests.post(self.url + "/api/v1/alerts", json=doc, headers={"Authorization": f"Bearer {token}"},
                             timeout=10)

    def runs(self) -> list[str]:
        """Stored run ids."""
        runs: list[str] = requests.get(self.url + "/api/v1/report/runs", timeout=10).json()["runs"]
        return runs

    def run(self, run_id: str) -> dict[str, object]:
        """One stored run document."""
        doc: dict[str, object] = requests.get(f"{self.url}/api/v1/report/runs/{run_id}", timeout=10).json()
        return doc

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample of ``/metrics`` (labels must all match), or None."""
        return metric(self.url, name, **labels)

    def stop(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until it exited)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start


def metric(url: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` in ``url``/metrics whose labels include ``labels``."""
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


@contextlib.contextmanager
def serve(config: Path, port: int, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`rmxdiag serve -c CONFIG` listening on ``port``; killed (whole group) at the end."""
    proc = subprocess.Popen([*SERVE, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    served = Served(proc, port)
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: served.chunks.extend(iter(lambda: stdout.read1(65536), b"")),
                              daemon=True)
    reader.start()
    try:
        wait_for_port(port, proc=proc)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        reader.join(10)
        stdout.close()
        (config.parent / "serve.log").write_bytes(b"".join(served.chunks))


def daemon_yaml(port: int, targets: dict[str, int], extra: str = "", *, interval: float = 60,
                deadline: float = 1, schedule: bool = False) -> str:
    """A config: ``targets`` (name -> registrar port on 127.0.0.1), webhook with ``token``, ``extra``."""
    text = (f'settings:\n  listen: "127.0.0.1:{port}"\n  state_dir: state\n  interval: {interval}\n'
            f"  deadline: {deadline}\nschedule: {'true' if schedule else 'false'}\ntargets:\n")
    for name, registrar in targets.items():
        text += f"  - name: {name}\n    registrars:\n      - host: 127.0.0.1\n        port: {registrar}\n"
    return text + "webhook:\n  token_file: token\n  cooldown: 0\n" + extra


def daemon_dir(directory: Path, targets: dict[str, int], extra: str = "", **kw: float | bool) -> tuple[Path, int]:
    """Write token + config into ``directory``; (config path, port)."""
    secret(directory / "token", TOKEN.encode())
    port = free_port()
    return write(directory / "rmxdiag.yaml", daemon_yaml(port, targets, extra, **kw)), port  # type: ignore[arg-type]


def marked(marker: str) -> list[int]:
    """Live processes (anywhere, orphans included) whose argv mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, waiting for its reaper) is not alive."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def zombies_of(pid: int) -> list[int]:
    """Zombie descendants of ``pid`` (children nobody reaped)."""
    out = []
    for child in children_of(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                out.append(child)
    return out


def kill_marked(marker: str) -> None:
    """Clean up after a test whose subject failed to: SIGKILL every process carrying ``marker``."""
    for pid in marked(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size (VmHWM) of process ``pid``, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def sleeper(marker: str, seconds: int = 60) -> str:
    """A shell word list for a process that sleeps with ``marker`` in its argv."""
    return f"{sys.executable} -c 'import time; time.sleep({seconds})' {marker}"


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (head and a Content-Length body) from ``conn``."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return
        body += piece


def dripping_http(period: float) -> Handler:
    """An HTTP peer that answers 200 one byte every ``period`` seconds (each read sees progress)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nfixed, see logs\n"

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        for byte in answer:
            conn.sendall(bytes([byte]))
            if stop.wait(period):
                return
    return handle


def endless_http(total: int) -> Handler:
    """An HTTP peer that answers 200 and then ``total`` bytes of body as fast as the client reads."""
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\n\r\n".encode())
        chunk = b"x" * 65536
        sent = 0
        while sent < total and not stop.is_set():
            conn.sendall(chunk)
            sent += len(chunk)
    return handle


def log_seconds(line: str) -> float:
    """The time of a daemon log line (``YYYY-MM-DD HH:MM:SS,mmm LEVEL ...``) as seconds of the day."""
    clock = line.split()[1]
    h, m, rest = clock.split(":")
    s, ms = rest.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
