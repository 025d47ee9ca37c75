"""The report store: troubleshooting runs as JSON files in ``state_dir/reports``.

- Writes are atomic (:func:`probes.fileio.write_atomic`: a private temporary file, fsync,
  then a link into place) and never replace an existing report: a taken id moves on to the next
  sequence number.
- Run ids are ``STAMP-SEQ-TARGET``; SEQ (4 digits or more) comes from the sequence kept in the
  state directory, so ids do not repeat after a reload or a restart (nor after a lost
  ``daemon.json``: the sequence resumes after the highest one stored).
- Runs are ordered by SEQ, never by STAMP (a wall clock set back would make a new run the
  oldest). ``keep`` reports are kept per target (oldest removed first), so one noisy target
  cannot evict the evidence of the others; pruning removes only regular files named like run ids and owned by
  the daemon's user, in the daemon's own directory.
- ``reports`` is never followed through a symlink, nor is a report file; temporary files left
  by a crash are removed when the store opens.
- A failed write (disk full, RLIMIT_FSIZE, a refused symlink) leaves the old reports intact and
  no temporary file behind; it is counted and logged, never fatal.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from daemon.serve.state import DaemonState, clean_temporary, open_dir, own_regular, read_private
from probes.fileio import write_atomic
from probes.redact import redact_doc

log = logging.getLogger("rmxdiag.store")

REPORTS = "reports"
_ID = re.compile(r"([0-9]{8}T[0-9]{6}Z)-([0-9]{4,12})-([A-Za-z0-9_.-]{1,128})")
_MAX_REPORT = 64 * 1024 * 1024
_ATTEMPTS = 100  # ids tried before giving up (each taken one was a report already there)


class ReportStore:
    """Bounded (per target), atomic, owner-only storage of troubleshooting-run documents."""

    def __init__(self, state_dir: Path, keep: int, state: DaemonState) -> None:
        self.state_dir = state_dir
        self.directory = state_dir / REPORTS
        self.keep = max(1, keep)
        self.state = state
        self.write_errors = 0
        self._lock = threading.Lock()
        with contextlib.suppress(OSError), self._open() as fd:
            removed = clean_temporary(fd)
            if removed:
                log.info("removed %d temporary report file(s) left by an interrupted write", removed)
            stored = self._ids(fd)
            if stored:
                state.at_least(_sequence(stored[-1]))

    @contextlib.contextmanager
    def _open(self) -> Any:
        fd = open_dir(self.state_dir, REPORTS)
        try:
            yield fd
        finally:
            os.close(fd)

    def save(self, stamp: str, target: str, document: dict[str, Any]) -> str | None:
        """Store ``document``; return its id, or None when the write failed (counted and logged)."""
        data = (json.dumps(redact_doc(document), indent=2) + "\n").encode()
        with self._lock:
            try:
                with self._open() as fd:
                    run_id = self._write(fd, stamp, target, data)
                    self._prune(fd, target)
            except OSError as exc:
                self.write_errors += 1
                why = exc.strerror or type(exc).__name__
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    why = "it is a symlink or not a directory (refused)"
                log.error("could not store the report of %s in %s: %s", target, self.directory, why)
                return None
            return run_id

    def _write(self, fd: int, stamp: str, target: str, data: bytes) -> str:
        for _ in range(_ATTEMPTS):
            run_id = f"{stamp}-{self.state.next_sequence():04d}-{target}"
            try:
                write_atomic(f"{run_id}.json", data, replace=False, dir_fd=fd)
            except FileExistsError:
                log.warning("run id %s is taken by a report already stored: using the next one", run_id)
                continue
            return run_id
        raise FileExistsError(f"{_ATTEMPTS} run ids in a row are taken")

    def _prune(self, fd: int, target: str) -> None:
        mine = [i for i in self._ids(fd) if target_of(i) == target]
        for old in mine[: -self.keep]:
            name = f"{old}.json"
            if own_regular(fd, name):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)

    @staticmethod
    def _ids(fd: int) -> list[str]:
        with os.scandir(fd) as entries:
            names = [e.name[:-5] for e in entries if e.name.endswith(".json") and e.is_file(follow_symlinks=False)]
        return sorted((n for n in names if _ID.fullmatch(n)), key=_sequence)

    def ids(self) -> list[str]:
        """Stored run ids, oldest (lowest sequence) first."""
        try:
            with self._open() as fd:
                return self._ids(fd)
        except OSError:
            return []

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The stored document called ``run_id`` (validated name, no path tricks, no symlink), or None."""
        if not _ID.fullmatch(run_id):
            return None
        try:
            with self._open() as fd:
                doc: dict[str, Any] = json.loads(read_private(fd, f"{run_id}.json", _MAX_REPORT))
        except (OSError, ValueError):
            return None
        return doc


def target_of(run_id: str) -> str | None:
    """The target name inside a run id (None for a name that is not a run id)."""
    match = _ID.fullmatch(run_id)
    return match.group(3) if match else None


def _sequence(run_id: str) -> int:
    """The sequence number inside a (valid) run id: the order runs were stored in."""
    match = _ID.fullmatch(run_id)
    return int(match.group(2)) if match else -1
