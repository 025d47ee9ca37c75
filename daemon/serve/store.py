"""The report store: troubleshooting runs as JSON files in ``state_dir/reports``.

Writes are atomic (a 0600 temporary file in the same directory, fsync, ``os.replace``), the
number of files is bounded (oldest removed first), and a failed write (disk full, RLIMIT_FSIZE)
leaves the old reports intact and no temporary file behind; it is counted, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from probes.redact import redact_doc

log = logging.getLogger("rmxdiag.store")

_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9]{4}-[A-Za-z0-9_.-]{1,128}$")


class ReportStore:
    """Bounded, atomic, owner-only storage of troubleshooting-run documents."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = max(1, keep)
        self.write_errors = 0
        self._lock = threading.Lock()
        self._seq = 0

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def save(self, stamp: str, target: str, document: dict[str, Any]) -> str | None:
        """Store ``document``; return its id, or None when the write failed (counted and logged)."""
        data = (json.dumps(redact_doc(document), indent=2) + "\n").encode()
        with self._lock:
            self._seq = (self._seq + 1) % 10_000
            run_id = f"{stamp}-{self._seq:04d}-{target}"
            tmp = self.directory / f".{run_id}.tmp"
            try:
                self._ensure_dir()
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                try:
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, self.directory / f"{run_id}.json")
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            except OSError as exc:
                self.write_errors += 1
                log.error("could not store the report of %s in %s: %s", target, self.directory,
                          exc.strerror or type(exc).__name__)
                return None
            self._prune()
            return run_id

    def _prune(self) -> None:
        for old in self.ids()[: -self.keep]:
            with contextlib.suppress(OSError):
                (self.directory / f"{old}.json").unlink()

    def ids(self) -> list[str]:
        """Stored run ids, oldest first."""
        try:
            names = [p.name[:-5] for p in self.directory.glob("*.json")]
        except OSError:
            return []
        return sorted(n for n in names if _ID.match(n))

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The stored document called ``run_id`` (validated name, no path tricks), or None."""
        if not _ID.match(run_id):
            return None
        try:
            doc: dict[str, Any] = json.loads((self.directory / f"{run_id}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return doc
