"""One log line per interval for events a client (or a flood) can repeat at will."""

from __future__ import annotations

import logging
import threading
import time


class Throttled:
    """Logs at most one line every ``every`` seconds; the next line says how many were not logged.

    For events anyone who reaches the port can cause as often as they like (a malformed request,
    an unreadable token file at each POST, accepts failing at the file-descriptor limit): the
    journal keeps a trace of them without being flooded. Thread-safe.
    """

    def __init__(self, logger: logging.Logger, level: int, every: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.every = every
        self.suppressed = 0
        self._last = -every
        self._lock = threading.Lock()

    def log(self, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless a line went out less than ``every`` seconds ago; True when logged."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.every:
                self.suppressed += 1
                return False
            self._last, skipped, self.suppressed = now, self.suppressed, 0
        suffix = f" ({skipped} more since the last line not logged)" if skipped else ""
        self.logger.log(self.level, msg + "%s", *args, suffix)
        return True
