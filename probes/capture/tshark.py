"""Extraction over tshark: one capture file -> a stream of :class:`PacketEvent`.

This module runs as a **child process** (``python -m probes.capture.tshark FILE PORT TSHARK
[KEYLOG]``) started by :mod:`probes.capture.files` in its own session,
because (measured with pyshark 0.6 / tshark 4.0.17):
pyshark installs an asyncio child watcher that breaks captures in other threads, its sync API
fails inside a running event loop, and a child process bounds memory and can be killed as a
whole process group together with the tshark and tcpdump it starts.

Two paths, chosen per file:

* **TLS secrets** (a key log, or a pcapng with a Decryption Secrets Block): pyshark through its
  public API only, ``FileCapture`` / ``PipeCapture`` with ``use_json``, ``include_raw``,
  ``display_filter``, ``override_prefs``, ``decode_as``, ``tshark_path`` and ``custom_parameters``
  (tshark's ``-j`` node filter), one ``apply_on_packets`` callback and the packets' public layer
  API (:func:`probes.capture.layers.event_from_packet`): the decrypted handshake exists only inside
  tshark.
* **no secrets**: tshark's field output, read by :mod:`probes.capture.fields` (pyshark's public
  parsers cannot read ``-T fields`` or ``-e`` JSON, and its JSON trees measured three times over the
  time goal on the bench capture).

Both read the file through a BPF prefilter on the port (``tcpdump -r F -w -``) when
:mod:`probes.capture.formats` says libpcap reads it exactly as tshark would, and keep only the
frames that carry a fact (display filter below); nothing is kept in memory.

Output protocol on stdout, one line each: ``E <event json>``, ``W <warning>``, ``X <events>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.capture.fields import event_from_line, tshark_options
from probes.capture.formats import plan
from probes.capture.layers import Directions, event_from_packet

# Frames that carry a fact: handshake/alert/CCS records (an SSLv2-format ClientHello has no
# content type), connection setup and teardown, retransmissions and (decrypted) SIP.
# Encrypted application data is skipped.
DISPLAY_FILTER = ("tls.record.content_type in {20..22} || tls.handshake.type == 1 || tcp.flags.syn == 1"
                  " || tcp.flags.reset == 1 || tcp.flags.fin == 1 || tcp.analysis.retransmission || sip")
# tshark's -j output filter: only these nodes and their direct fields (measured on the bench capture:
# full subtrees, every certificate dissected field by field, made JSON handling dominate the run).
# "tcp.segments" carries tcp.reassembled.data; "tls.handshake" the message types after reassembly.
NODES = ("frame ip ipv6 tcp tcp.flags tcp.analysis tcp.analysis.flags _ws.expert tcp.segments tls tls.record"
         " tls.handshake tls.alert_message sip")
# The reassembly the analysis relies on, set explicitly so a user's Wireshark preferences cannot
# turn it off (all are tshark's defaults).
PREFS = {"tcp.desegment_tcp_streams": "TRUE", "tcp.analyze_sequence_numbers": "TRUE",
         "tls.desegment_ssl_records": "TRUE", "tls.desegment_ssl_application_data": "TRUE"}
# pyshark (secrets path) reports a tshark that exited non-zero, but not one killed by a signal (its returncode
# is negative), and it kills a tshark not yet reaped when its output ends. This wrapper, given to
# pyshark as its tshark, records tshark's exit status (and its stderr) in files before the output
# pipe closes, so the end of the stream is known to be the end of the capture.
_GUARD = """#!/bin/sh
"$RMXDIAG_TSHARK" "$@" 2>>"$RMXDIAG_TSHARK_STATUS.err"
status=$?
echo "$status" >>"$RMXDIAG_TSHARK_STATUS"
exit "$status"
"""


def _find_tcpdump() -> str | None:
    return shutil.which("tcpdump") or next((p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump")
                                            if os.path.exists(p)), None)


def _prefilter(path: str, port: int, tcpdump: str) -> tuple[subprocess.Popen[bytes] | None, int | None]:
    """Start ``tcpdump -r F -w - 'tcp port P'`` (BPF, in C) and return it with its output fd."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([tcpdump, "-r", path, "-w", "-", "-n", f"tcp port {port}"],  # noqa: S603
                            stdout=write_fd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(write_fd)
    return proc, read_fd


@contextmanager
def _guarded(tshark: str) -> Iterator[tuple[str, Path | None]]:
    """(path pyshark runs as tshark, file its exit statuses are appended to; None: unguarded)."""
    workdir = Path(tempfile.mkdtemp(prefix="rmxdiag-tshark-"))
    try:
        guard = workdir / "tshark"  # pyshark looks for a program named tshark in tshark_path's folder
        guard.write_text(_GUARD)
        guard.chmod(0o700)
        if os.statvfs(workdir).f_flag & os.ST_NOEXEC:  # a noexec temp directory: run tshark itself
            yield tshark, None
            return
        status = workdir / "status"
        os.environ["RMXDIAG_TSHARK"], os.environ["RMXDIAG_TSHARK_STATUS"] = tshark, str(status)
        yield str(guard), status
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _guard_verdict(status: Path | None) -> str | None:
    """Why tshark did not finish the capture (None: it did, or it is not guarded)."""
    if status is None:
        return None
    try:
        codes = status.read_text().split()
    except OSError:
        codes = []
    if not codes:
        return "tshark ended without an exit status"
    code = int(codes[-1]) if codes[-1].isdigit() else -1
    if code == 0:
        return None
    detail = _last_line(_read(status.with_name(status.name + ".err")))
    if code > 128:
        return f"tshark was killed by signal {code - 128}" + ("" if detail == "no detail" else f" ({detail})")
    return detail if detail != "no detail" else f"tshark exited with status {code}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def extract(path: str, port: int, tshark: str, keylog: str | None, emit: Callable[[str], None]) -> None:
    """Emit the protocol lines for one file (call only in the worker process)."""
    tcpdump_path = _find_tcpdump()
    how = plan(Path(path), port, tcpdump_path)
    tcpdump, read_fd = _prefilter(path, port, tcpdump_path) if how.prefilter and tcpdump_path else (None, None)
    display_filter = DISPLAY_FILTER if read_fd is not None else f"tcp.port == {port} && ({DISPLAY_FILTER})"
    prefs = {**PREFS, **({"tls.keylog_file": keylog} if keylog else {})}
    decode = {f"tcp.port=={port}": "tls", f"tls.port=={port}": "sip"} if port != 5061 else {}
    # tshark uses a file's embedded secrets by itself; a key log arrives through the preferences.
    job = _Job(path, read_fd, tshark, display_filter, prefs, decode)
    count = (_with_pyshark if keylog is not None or how.secrets else _with_fields)(job, emit)
    if tcpdump is not None:
        stderr = tcpdump.stderr.read().decode("utf-8", "replace") if tcpdump.stderr else ""
        if tcpdump.wait() != 0:
            emit("W capture file is damaged or cut short: " + _last_line(stderr))
    emit(f"X {count}")


@dataclass(frozen=True)
class _Job:
    """What one tshark run reads (the file, or the prefilter's pipe when ``read_fd`` is set) and how."""

    path: str
    read_fd: int | None
    tshark: str
    display_filter: str
    prefs: dict[str, str]
    decode: dict[str, str]


def _with_fields(job: _Job, emit: Callable[[str], None]) -> int:
    """Run tshark with field output (no secrets); emit each event; return how many."""
    read_fd = job.read_fd
    argv = [job.tshark, "-n", "-r", "-" if read_fd is not None else job.path, "-Y", job.display_filter,
            *tshark_options()]
    for name, value in job.prefs.items():
        argv += ["-o", f"{name}:{value}"]
    for criterion, protocol in job.decode.items():
        argv += ["-d", f"{criterion},{protocol}"]
    directions = Directions()
    count = 0
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, stdin=read_fd if read_fd is not None else subprocess.DEVNULL,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=errors)
        if read_fd is not None:
            os.close(read_fd)
        assert proc.stdout is not None  # noqa: S101 (Popen with PIPE)
        for raw in proc.stdout:
            event = event_from_line(raw.decode("utf-8", "replace"), directions)
            if event is not None:
                count += 1
                emit("E " + _dumps(event.to_json()))
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            detail = _last_line(errors.read()[-4000:].decode("utf-8", "replace"))
            why = f"tshark was killed by signal {-code}" if code < 0 else f"tshark exited with status {code}"
            emit(f"W tshark stopped early: {why}" + ("" if detail == "no detail" else f" ({detail})"))
    return count


def _with_pyshark(job: _Job, emit: Callable[[str], None]) -> int:
    """Read the decrypted handshake through pyshark's public API; emit each event; return how many."""
    from pyshark.capture.capture import TSharkCrashException
    from pyshark.capture.file_capture import FileCapture
    from pyshark.capture.pipe_capture import PipeCapture

    directions = Directions()
    count = 0
    warned = False

    def on_packet(pkt: Any) -> None:
        nonlocal count
        event = event_from_packet(pkt, directions)
        if event is not None:
            count += 1
            emit("E " + _dumps(event.to_json()))

    def warn(exc: Exception) -> None:
        nonlocal warned
        if not warned:
            warned = True
            emit("W tshark stopped early: " + (_guard_verdict(status) or _last_line(str(exc))))

    with _guarded(job.tshark) as (program, status):
        common: dict[str, Any] = {"use_json": True, "include_raw": True, "display_filter": job.display_filter,
                                  "override_prefs": job.prefs, "decode_as": job.decode or None,
                                  "tshark_path": program, "custom_parameters": ["-j", NODES]}
        cap = PipeCapture(pipe=job.read_fd, **common) if job.read_fd is not None else \
            FileCapture(job.path, keep_packets=False, **common)
        try:
            # One coroutine for the whole stream, packets handed to the callback and dropped: measured
            # ~2x less Python time than `for pkt in cap`, which runs the event loop once per packet.
            cap.apply_on_packets(on_packet)
        except TSharkCrashException as exc:
            warn(exc)
        except KeyError:
            # A header-only stream (no packet passed the prefilter) makes pyshark's JSON parser fail.
            if count:
                raise
        finally:
            try:
                cap.close()
            except TSharkCrashException as exc:  # a damaged file raises again on close
                warn(exc)
        verdict = _guard_verdict(status)
        if verdict and not warned:
            emit("W tshark stopped early: " + verdict)
    return count


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith(("Running as user", "Try rerunning"))]
    return lines[-1][:300] if lines else "no detail"


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def main(argv: list[str]) -> int:
    """Worker entry point: ``FILE PORT TSHARK [KEYLOG]``; lines on stdout, exit 0 when done."""
    path, port, tshark = argv[0], int(argv[1]), argv[2]
    keylog = argv[3] if len(argv) > 3 else None
    out = sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    extract(path, port, tshark, keylog, emit)
    out.flush()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # Skip interpreter teardown: pyshark's capture finalizers would close the prefilter pipe a
    # second time and try to stop a tshark that is already gone.
    os._exit(code)
