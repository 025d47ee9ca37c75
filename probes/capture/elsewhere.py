"""What a capture held when nothing crossed the port asked for: the ports TLS ClientHellos went to.

A capture taken on the wrong port (or ``--port`` given wrongly) has no connection to judge; saying
"TLS seen on port 5062" turns that into the fix. One bounded tshark pass over the file, with a
display filter on the bytes of a ClientHello (record type 22, handshake type 1) so any port is
found, not only those tshark dissects as TLS.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from probes.capture.files import run_bounded
from probes.model import Finding, Severity

CLIENT_HELLO = "tcp.len > 5 && tcp.payload[0] == 0x16 && tcp.payload[5] == 0x01"
MAX_SECONDS = 30.0  # a look around, not the analysis: never longer than this


def tls_ports(files: Sequence[Path], tshark: str, deadline: float) -> Counter[int] | None:
    """ClientHellos per destination port over ``files`` (None: tshark did not finish in time)."""
    seen: Counter[int] = Counter()
    for path in files:
        left = min(deadline - time.monotonic(), MAX_SECONDS)
        if left <= 0:
            return None
        code, out = run_bounded([tshark, "-n", "-r", str(path), "-Y", CLIENT_HELLO, "-T", "fields",
                                 "-e", "tcp.dstport"], left)
        if code is None:
            return None
        seen.update(int(line) for line in out.splitlines() if line.strip().isdigit())
    return seen


def nothing_on_port(port: int, seen: Counter[int] | None, where: str, live: bool = False) -> Finding:
    """The finding of a capture with no connection on ``port``: what it held instead, and what to do.

    ``live``: a live capture, which only ever records ``port`` (so other ports were not looked at).
    """
    if live:
        message = (f"no connection on port {port} during {where}: nothing to judge (was the RMX trying to "
                   "register meanwhile, and is this the interface towards it?)")
    elif seen:
        ports = ", ".join(f"{p} ({n} ClientHello{'s' if n > 1 else ''})" for p, n in seen.most_common(3))
        first = seen.most_common(1)[0][0]
        message = (f"no connection on port {port} in {where}; TLS seen on port {ports}: "
                   f"read it again with --port {first}")
    elif seen is None:
        message = f"no connection on port {port} in {where} (the look for TLS on other ports ran out of time)"
    else:
        message = f"no connection on port {port} in {where}, and no TLS ClientHello on any other port"
    return Finding("CAPTURE_NOTHING_TO_JUDGE", Severity.INFO, message,
                   {"nothing_to_judge": True, "port": port, "tls_ports": {str(p): n for p, n in (seen or {}).items()}})


def nothing_of_rmx(port: int, rmx_ip: str, others: Counter[str], where: str) -> Finding:
    """The finding of a capture whose connections on ``port`` all belong to hosts other than ``rmx_ip``."""
    hosts = ", ".join(f"{h} ({n} connection{'s' if n > 1 else ''})" for h, n in others.most_common(3))
    more = len(others) - 3
    message = (f"no connection of {rmx_ip} on port {port} in {where}: nothing to judge; clients seen: {hosts}"
               + (f" and {more} more" if more > 0 else "") + " (is --rmx-ip the RMX's signaling address?)")
    return Finding("CAPTURE_NOTHING_TO_JUDGE", Severity.INFO, message,
                   {"nothing_to_judge": True, "port": port, "rmx_ip": rmx_ip,
                    "other_clients": dict(others.most_common(10))})
