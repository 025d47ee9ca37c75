"""The process side of capture inspection: tool checks, input files, the worker, live capture.

Every child (the pyshark worker with its tshark and tcpdump, dumpcap) runs in its own session
with a deadline; on deadline or error the whole process group is killed, so no tshark outlives
a run. Bad input raises :class:`InputError` naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from probes.capture.events import PacketEvent
from probes.model import ErrorKind, InputError

MIN_TSHARK = (3, 6)  # JSON -J filtering, --no-duplicate-keys and "in {a..b}" display-filter sets
_PCAP_MAGICS = {bytes.fromhex(m) for m in ("a1b2c3d4", "d4c3b2a1", "a1b23c4d", "4d3cb2a1")}
_PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
_MAX_LINE = 32 * 1024 * 1024  # one event line (certificates in hex) is far below this
DROP_IN = "systemd/rmxdiag.service.d/capture.conf"


# Children running right now, so a stopping daemon can end them at once instead of waiting for
# their deadlines (a capture deadline can be minutes; SIGTERM must stop the service in seconds).
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()


@contextlib.contextmanager
def _tracked(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        yield proc
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)


def stop_children() -> int:
    """Kill the process group of every running worker/capture (daemon shutdown); how many.

    Their owners then see EOF or an exit status at once and finish with a warning, so the probe
    threads end within a second instead of at their deadlines.
    """
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return len(running)


def kill_group(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM then SIGKILL the process group of ``proc`` (started with start_new_session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            if sig == signal.SIGTERM:
                # the leader is gone; children of the group may linger: make sure they die too
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def run_bounded(argv: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """Run a short command in its own session; (exit code or None on timeout, output)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            with _tracked(proc):
                code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            kill_group(proc)
        out.seek(0)
        return code, out.read(65536).decode("utf-8", "replace")


def find_tshark(timeout: float = 10.0) -> str:
    """The tshark path; InputError(TOOL_MISSING) naming the Debian package when absent or old."""
    path = shutil.which("tshark")
    if path is None:
        raise InputError("tshark is not installed: install the Debian package 'tshark'", ErrorKind.TOOL_MISSING)
    code, out = run_bounded([path, "-v"], timeout)
    match = re.search(r"TShark \(Wireshark\) (\d+)\.(\d+)", out)
    if code is None:
        raise InputError(f"{path} -v did not answer within {timeout:g}s: reinstall the Debian package 'tshark'",
                         ErrorKind.TOOL_MISSING)
    if code != 0 or match is None:
        raise InputError(f"{path} is not a working tshark: install the Debian package 'tshark'",
                         ErrorKind.TOOL_MISSING)
    version = (int(match.group(1)), int(match.group(2)))
    if version < MIN_TSHARK:
        raise InputError(f"tshark {version[0]}.{version[1]} is too old (need {MIN_TSHARK[0]}.{MIN_TSHARK[1]}+): "
                         "upgrade the Debian package 'tshark'", ErrorKind.TOOL_MISSING)
    return path


def check_capture(path: Path) -> None:
    """Raise InputError unless ``path`` is a readable, non-empty pcap or pcapng file."""
    try:
        with path.open("rb") as f:
            if not path.is_file():
                raise InputError(f"{path}: not a regular file", ErrorKind.FILE_UNREADABLE)
            head = f.read(32)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", ErrorKind.FILE_UNREADABLE) from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory without captures", ErrorKind.FILE_UNREADABLE) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}", ErrorKind.FILE_UNREADABLE) from None
    if not head:
        raise InputError(f"{path}: empty file, not a capture")
    if head[:4] == _PCAPNG_MAGIC:
        return
    if head[:4] == b"GMBU":  # Microsoft Network Monitor 2.x/3.x (.cap)
        raise InputError(f"{path}: a Network Monitor capture: convert it first with Wireshark's editcap "
                         f"(editcap -F pcapng {path.name} {path.stem}.pcapng) or save it as pcapng")
    if head[:4] not in _PCAP_MAGICS:
        raise InputError(f"{path}: not a pcap or pcapng capture")
    if len(head) <= 24:
        raise InputError(f"{path}: capture holds no packets (pcap header only)")


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory becomes its capture files, oldest first (rotation order)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = []
            for child in path.iterdir():
                if child.is_file() and not child.name.startswith("."):
                    with contextlib.suppress(OSError), child.open("rb") as f:
                        magic = f.read(4)
                        if magic == _PCAPNG_MAGIC or magic in _PCAP_MAGICS:
                            found.append(child)
            if not found:
                raise InputError(f"{path}: directory holds no pcap or pcapng file")
            out.extend(sorted(found, key=lambda p: (p.stat().st_mtime, p.name)))
        else:
            out.append(path)
    return out


def stream_events(path: Path, port: int, tshark: str, keylog: Path | None,
                  deadline: float) -> Iterator[PacketEvent | str]:
    """Events of one capture file from the pyshark worker; a str is a warning for the report."""
    argv = [sys.executable, "-m", "probes.capture.tshark", str(path), str(port), tshark]
    if keylog is not None:
        argv.append(str(keylog))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors,  # noqa: S603
                                stdin=subprocess.DEVNULL, start_new_session=True)
        finished = False
        try:
            assert proc.stdout is not None  # noqa: S101 (Popen with PIPE)
            with _RUNNING_LOCK:
                _RUNNING.add(proc)
            for line in _lines(proc.stdout.fileno(), deadline):
                if line is None:
                    yield (f"{path}: deadline reached, tshark stopped; results up to that point")
                    return
                kind, _, rest = line.partition(" ")
                if kind == "E":
                    yield PacketEvent.from_json(json.loads(rest))
                elif kind == "W":
                    yield f"{path}: {rest}"
                elif kind == "X":
                    finished = True
            if not finished:
                errors.seek(0)
                tail = [ln for ln in errors.read()[-4000:].decode("utf-8", "replace").splitlines() if ln.strip()]
                yield f"{path}: extraction stopped early ({tail[-1][:200] if tail else 'no detail'})"
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
            kill_group(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def _lines(fd: int, deadline: float) -> Iterator[str | None]:
    """Lines from ``fd`` until EOF; None once when the deadline passes or a line is absurdly long."""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(min(left, 1.0)):
                if time.monotonic() >= deadline:
                    yield None
                    return
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                yield raw.decode("utf-8", "replace")
            if len(buf) > _MAX_LINE:
                yield None
                return
    finally:
        sel.close()


def _has_cap_net_raw() -> bool:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 13))
    return False


def _missing_privilege(interface: str) -> InputError:
    return InputError(
        f"live capture on {interface}: CAP_NET_RAW is missing; the systemd drop-in {DROP_IN} "
        "(AmbientCapabilities=CAP_NET_RAW) grants it", ErrorKind.PERMISSION)


def live_capture(interface: str, duration: float, port: int, *, max_packets: int, max_bytes: int,
                 directory: Path, deadline: float) -> Path:
    """Capture ``tcp port P`` on ``interface`` for at most ``duration`` s / packets / bytes."""
    dumpcap = shutil.which("dumpcap") or shutil.which("tshark")
    if dumpcap is None:
        raise InputError("dumpcap is not installed: install the Debian package 'tshark'", ErrorKind.TOOL_MISSING)
    if not _has_cap_net_raw() and not _file_caps(dumpcap):
        raise _missing_privilege(interface)
    out = directory / f"live-{interface}-{int(time.time())}.pcapng"
    argv = [dumpcap, "-q", "-i", interface, "-f", f"tcp port {port}", "-a", f"duration:{max(1, int(duration))}",
            "-c", str(max_packets), "-a", f"filesize:{max(1, max_bytes // 1000)}", "-w", str(out)]
    budget = min(duration + 15.0, max(1.0, deadline - time.monotonic()))
    code, text = run_bounded(argv, budget)
    if code is None:
        raise InputError(f"live capture on {interface} did not stop within {budget:.0f}s", ErrorKind.DEADLINE)
    if code != 0:
        # dumpcap reports a privilege problem only as text; this is the one place that reads it.
        if re.search(r"permission|not permitted", text, re.IGNORECASE):
            raise _missing_privilege(interface)
        # dumpcap prints its "Capturing on 'IF'" progress line first; the error comes after it.
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and "root" not in ln and not ln.startswith("Capturing on")]
        detail = lines[-1] if lines else "no detail"
        raise InputError(f"live capture on {interface} failed: {detail.strip()[:200]}", ErrorKind.BAD_INPUT)
    return out


def _file_caps(program: str) -> bool:
    """True when ``program`` carries file capabilities (dumpcap's usual Debian setup)."""
    try:
        return bool(os.getxattr(program, "security.capability"))
    except OSError:
        return False
