"""sd_notify without a dependency: one datagram to ``$NOTIFY_SOCKET`` (abstract when it starts with @).

Measured on systemd 252: the protocol is a single AF_UNIX datagram of
``KEY=value`` lines. Outside systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("rmxdiag.sdnotify")


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``KEY=value`` fields to the service manager; False when there is none or it failed."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to the service manager failed: %s", exc.strerror or type(exc).__name__)
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set."""
    env = environ if environ is not None else os.environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
