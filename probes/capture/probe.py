"""The capture probe: inspect capture files (or a bounded live capture) of RMX <-> Front End traffic.

``inspect()`` is the direct entry point (CLI, tests); ``run()`` is the scheduler's. Extraction
(pyshark over tshark, in a killable worker process) feeds the pure :mod:`probes.capture.analysis`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from probes.capture.analysis import CaptureAnalyzer
from probes.capture.elsewhere import nothing_of_rmx, nothing_on_port, tls_ports
from probes.capture.files import check_capture, expand, find_tshark, live_capture, stream_events
from probes.fileio import open_regular, read_capped
from probes.model import Finding, InputError, ProbeOutcome, ProbeStatus, Severity, skipped
from probes.target import ProbeContext, Settings, Target

NAME = "capture"


def inspect(paths: Sequence[Path], port: int = 5061, *, rmx_ip: str | None = None, keylog: Path | None = None,
            deadline: float | None = None, rmx_issuers: Sequence[bytes] = (), live: str = "") -> ProbeOutcome:
    """Analyse capture files/directories; raises InputError for bad input (missing tshark too).

    No connection on ``port`` is nothing to judge: a finding says what the files held instead
    (``live``: the description of the live capture they came from, which held only that port).
    """
    start = time.monotonic()
    deadline = deadline if deadline is not None else start + 600.0
    files = expand(paths)
    for path in files:
        check_capture(path)
    if keylog is not None:
        # tshark opens the key log itself: a FIFO there would hang it, so it is refused here, at once.
        os.close(open_regular(keylog, "key log"))
    tshark = find_tshark(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
    analyzer = CaptureAnalyzer(port, rmx_ip, rmx_issuers)
    warnings: list[str] = []
    for path in files:
        if time.monotonic() >= deadline:
            warnings.append(f"{path}: not read, the deadline had passed")
            continue
        for item in stream_events(path, port, tshark, keylog, deadline):
            if isinstance(item, str):
                warnings.append(item)
            else:
                analyzer.feed(item)
    result, findings = analyzer.finish([str(p) for p in files], warnings)
    # Nothing on the port, in captures read whole: say what they held instead. (A read that stopped
    # early is CAPTURE_INCOMPLETE below, and a second tshark would only wait on the same trouble.)
    where = live or (str(files[0]) if len(files) == 1 else f"{len(files)} capture files")
    if result.connections == 0 and analyzer.others and rmx_ip is not None:
        findings.append(nothing_of_rmx(port, rmx_ip, analyzer.others, where))
    elif result.connections == 0 and not warnings:
        seen = None if live else tls_ports(files, tshark, deadline)
        findings.append(nothing_on_port(port, seen, where, live=bool(live)))
    if warnings:
        findings.append(Finding("CAPTURE_INCOMPLETE", Severity.WARNING,
                                "the capture was read only in part: " + "; ".join(warnings[:3]),
                                {"file": str(files[-1]), "count": len(warnings)}))
    return ProbeOutcome(NAME, ProbeStatus.OK, time.monotonic() - start, tuple(findings), result=result)


def inspect_live(interface: str, duration: float, *, port: int = 5061, max_packets: int = 200_000,
                 max_bytes: int = 200 * 1024 * 1024, rmx_ip: str | None = None, keylog: Path | None = None,
                 deadline: float | None = None, rmx_issuers: Sequence[bytes] = ()) -> ProbeOutcome:
    """Capture the SIP TLS port for a bounded time, then inspect what was captured."""
    deadline = deadline if deadline is not None else time.monotonic() + duration + 120.0
    with tempfile.TemporaryDirectory(prefix="rmxdiag-live-") as tmp:
        path = live_capture(interface, duration, port, max_packets=max_packets, max_bytes=max_bytes,
                            directory=Path(tmp), deadline=deadline)
        where = f"the live capture on {interface} ({duration:g} s)"
        try:
            check_capture(path)
        except InputError:
            # Nothing crossed the port during the window: an empty result, not an input error.
            return inspect_empty(path, port, where)
        return inspect([path], port, rmx_ip=rmx_ip, keylog=keylog, deadline=deadline, rmx_issuers=rmx_issuers,
                       live=where)


def inspect_empty(path: Path, port: int, where: str = "the live capture") -> ProbeOutcome:
    """The outcome of a live capture that saw no packet at all: nothing to judge."""
    analyzer = CaptureAnalyzer(port)
    result, findings = analyzer.finish([str(path)], ["no packet on the port during the live capture"])
    findings.append(nothing_on_port(port, None, where, live=True))
    return ProbeOutcome(NAME, ProbeStatus.OK, 0.0, tuple(findings), result=result)


def _issuers(target: Target) -> list[bytes]:
    """The RMX certificate's issuer (DER) when the target names a PEM certificate."""
    source = target.certificate
    if source is None or source.kind != "pem" or source.path is None:
        return []
    try:
        cert = x509.load_pem_x509_certificate(read_capped(source.path, "certificate file"))
    except (InputError, ValueError, x509.InvalidVersion):
        return []  # the certificate probe reports an unreadable certificate
    return [cert.issuer.public_bytes()]


def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """Scheduler entry point (through the engine): files/directory always; a live capture on demand only."""
    sources = target.capture
    issuers = _issuers(target)
    if sources.interface and ctx.on_demand:
        return inspect_live(sources.interface, sources.duration, port=sources.port,
                            max_packets=sources.max_packets, max_bytes=sources.max_bytes,
                            rmx_ip=target.signaling_ip, keylog=sources.keylog, deadline=ctx.deadline,
                            rmx_issuers=issuers)
    paths = [*sources.files, *([sources.directory] if sources.directory else [])]
    if not paths:
        return skipped(NAME)  # only an interface, and this is a scheduled run
    return inspect(paths, sources.port, rmx_ip=target.signaling_ip, keylog=sources.keylog,
                   deadline=ctx.deadline, rmx_issuers=issuers)
