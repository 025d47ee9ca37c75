"""The process side of capture inspection: tool checks, input files, the worker, live capture.

Every child (the pyshark worker with its tshark and tcpdump, dumpcap, ``tshark -v``) runs through
:mod:`probes.children`: one deadline for all of it, and its whole process tree ended at the
deadline and when it exits, so no tshark outlives a run. Bad input raises :class:`InputError`
naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from probes import children
from probes.capture.events import PacketEvent
from probes.capture.formats import Kind, inner_head, is_capture_head, kind_of
from probes.fileio import open_regular
from probes.model import ErrorKind, InputError

MIN_TSHARK = (3, 6)  # JSON -J filtering, --no-duplicate-keys and "in {a..b}" display-filter sets
_MAX_LINE = 32 * 1024 * 1024  # one event line (certificates in hex) is far below this
DROP_IN = "systemd/rmxdiag.service.d/capture.conf"


def run_bounded(argv: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """Run a short command (its whole tree bounded by ``timeout``); (exit code or None on timeout, output tail)."""
    done = children.run(argv, timeout=timeout, keep=65536)
    return done.returncode, done.output.decode("utf-8", "replace")


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
    """Raise InputError unless ``path`` is a readable, non-empty capture in a format tshark reads."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory without captures", ErrorKind.FILE_UNREADABLE)
    if not path.exists():
        raise InputError(f"{path}: no such file", ErrorKind.FILE_UNREADABLE)
    # Opened non-blocking and checked on the descriptor: a FIFO is refused, not waited on forever.
    fd = open_regular(path, "capture file")
    try:
        with os.fdopen(fd, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}", ErrorKind.FILE_UNREADABLE) from None
    if not head:
        raise InputError(f"{path}: empty file, not a capture")
    kind = kind_of(head)
    if kind is Kind.PCAP and len(head) <= 24:
        raise InputError(f"{path}: capture holds no packets (pcap header only)")
    if kind is Kind.GZIP and not inner_head(path):
        raise InputError(f"{path}: gzip-compressed, but empty or damaged")
    if (kind is Kind.OTHER or (kind is Kind.GZIP and kind_of(inner_head(path)) is Kind.OTHER)) \
            and not _tshark_reads(path):
        raise InputError(f"{path}: not a capture file tshark can read (pcap, pcapng, Network Monitor .cap, "
                         "snoop, gzip-compressed ...)")


# File types Wireshark opens that hold no network packets (it shows a PEM certificate, a JSON or a
# MIME file as one pseudo-frame): to rmxdiag they are not captures.
NOT_PACKETS = frozenset({"rfc7468", "mime", "json"})


def _tshark_reads(path: Path) -> bool:
    """Whether Wireshark's file reader knows the format (``captype``, shipped with tshark, says)."""
    captype = shutil.which("captype")
    if captype is None:
        return False
    code, out = run_bounded([captype, str(path)], 20.0)
    kind = out.strip().rsplit(": ", 1)[-1]
    return code == 0 and kind != "unknown" and kind not in NOT_PACKETS


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory becomes its capture files (known by their magic), oldest first."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = []
            for child in path.iterdir():
                if child.is_file() and not child.name.startswith("."):
                    with contextlib.suppress(OSError), child.open("rb") as f:
                        head = f.read(32)
                        if is_capture_head(head, inner_head(child) if kind_of(head) is Kind.GZIP else b""):
                            found.append(child)
            if not found:
                raise InputError(f"{path}: directory holds no capture file")
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
    finished = False
    # The worker, its tshark and tcpdump are one tree: ended at the deadline, and when the worker exits.
    with children.Child(argv, deadline=deadline, stderr="tail", keep=4000) as child:
        for line in _lines(child):
            if line is None:
                yield f"{path}: deadline reached, tshark stopped; results up to that point"
                return
            kind, _, rest = line.partition(" ")
            if kind == "E":
                yield PacketEvent.from_json(json.loads(rest))
            elif kind == "W":
                yield f"{path}: {rest}"
            elif kind == "X":
                finished = True
        child.wait()
        if not finished:
            tail = [ln for ln in child.errors.data.decode("utf-8", "replace").splitlines() if ln.strip()]
            yield f"{path}: extraction stopped early ({tail[-1][:200] if tail else 'no detail'})"


def _lines(child: children.Child) -> Iterator[str | None]:
    """Lines of the child's stdout until EOF; None once when the deadline passes or a line is absurdly long."""
    buf = b""
    for chunk in child.chunks():
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", "replace")
        if len(buf) > _MAX_LINE:
            yield None
            return
    if child.timed_out:
        yield None


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
