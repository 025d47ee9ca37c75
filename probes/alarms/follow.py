"""Follow a growing log file like ``tail -F``, across rotation, truncation and daemon restarts.

State (device, inode, offset, a hash of the bytes just before the offset, plus an opaque
``extra`` document the caller stores with it, e.g. the active alarm set) is persisted atomically
(temp file + fsync + rename, mode 0600) after each poll, so:

* rotation by rename: the old file is found again by its inode (same directory, e.g. ``log.1``)
  and drained from the saved offset before the new file is read from its start, so lines written
  while the daemon was down are not missed;
* truncation (copytruncate, ``> log``): size below the offset, or the bytes before the offset no
  longer hashing the same, restarts at offset 0;
* restart: the saved offset is trusted only when the hash still matches, so old lines are never
  reported again as new.

Memory is bounded: reading is chunked, an incomplete last line is left for the next poll (or
dropped and counted once it exceeds :data:`~probes.alarms.lines.MAX_LINE`), and each poll reads
at most ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes.alarms.lines import MAX_LINE, Skips
from probes.fileio import write_atomic
from probes.model import ErrorKind, InputError

log = logging.getLogger(__name__)

_TAIL = 256  # bytes hashed just before the offset
_MAX_SIBLINGS = 200  # directory entries examined when looking for a rotated file


@dataclass
class FollowState:
    """Where the follower is in which file."""

    dev: int = 0
    inode: int = 0
    offset: int = 0
    tail_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _tail_hash(fd: int, offset: int) -> str:
    start = max(0, offset - _TAIL)
    data = os.pread(fd, offset - start, start)
    return hashlib.sha256(data).hexdigest()[:16]


class Follower:
    """Yields complete new lines of ``path`` on each :meth:`poll` (bytes, without line end)."""

    def __init__(self, path: Path, state_file: Path | None = None, max_bytes: int = 64 << 20,
                 chunk: int = 1 << 16) -> None:
        self.path = path
        self.state_file = state_file
        self.max_bytes = max_bytes
        self.chunk = chunk
        self.skips = Skips()
        self.gaps = 0  # rotations where the old file could not be found again (lines may be lost)
        self.state = self._load()

    # -- persistence ---------------------------------------------------------------------------
    def _load(self) -> FollowState:
        if self.state_file is None:
            return FollowState()
        try:
            doc = json.loads(self.state_file.read_text())
            return FollowState(int(doc["dev"]), int(doc["inode"]), int(doc["offset"]), str(doc["tail_hash"]),
                               dict(doc.get("extra") or {}))
        except FileNotFoundError:
            return FollowState()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unusable follower state (%s): starting from the beginning of %s",
                        self.state_file, type(exc).__name__, self.path)
            return FollowState()

    def save(self) -> None:
        """Persist the state atomically with mode 0600 (no-op without a state file)."""
        if self.state_file is None:
            return
        s = self.state
        doc = {"path": str(self.path), "dev": s.dev, "inode": s.inode, "offset": s.offset,
               "tail_hash": s.tail_hash, "extra": s.extra}
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.state_file, json.dumps(doc).encode())

    # -- reading -------------------------------------------------------------------------------
    def poll(self) -> Iterator[bytes]:
        """New complete lines since the last poll; the state advances as lines are yielded."""
        try:
            # O_NONBLOCK: a FIFO put in place of the log must not hang the daemon (refused below).
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return  # between rename and re-creation: nothing to read yet
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open ({exc.strerror or type(exc).__name__})",
                             ErrorKind.FILE_UNREADABLE) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{self.path}: not a regular file", ErrorKind.FILE_UNREADABLE)
            s = self.state
            if s.inode and (st.st_dev, st.st_ino) != (s.dev, s.inode):
                yield from self._drain_rotated()
                self._restart(st)
            elif not s.inode:
                self._restart(st)
            elif st.st_size < s.offset or (s.offset and _tail_hash(fd, s.offset) != s.tail_hash):
                log.info("%s was truncated or rewritten: reading it from the start", self.path)
                self._restart(st)
            yield from self._read(fd)
        finally:
            os.close(fd)

    def _restart(self, st: os.stat_result) -> None:
        extra = {k: v for k, v in self.state.extra.items() if k != "_dropping"}
        self.state = FollowState(st.st_dev, st.st_ino, 0, "", extra)

    def _drain_rotated(self) -> Iterator[bytes]:
        """Read what is left of the previous file, found by its inode next to the current path."""
        s = self.state
        try:
            entries = sorted(self.path.parent.iterdir())[:_MAX_SIBLINGS]
        except OSError:
            entries = []
        for entry in entries:
            if entry == self.path or not entry.name.startswith(self.path.name):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (s.dev, s.inode):
                continue
            try:
                fd = os.open(entry, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                break
            try:
                if st.st_size >= s.offset and _tail_hash(fd, s.offset) == s.tail_hash:
                    yield from self._read(fd)
                return
            finally:
                os.close(fd)
        self.gaps += 1
        log.warning("%s was rotated and the old file is gone: lines written after offset %d may be lost",
                    self.path, s.offset)

    def _read(self, fd: int) -> Iterator[bytes]:
        s = self.state
        budget = self.max_bytes
        carry = b""
        pos = s.offset
        dropping = bool(s.extra.get("_dropping"))
        while budget > 0:
            block = os.pread(fd, min(self.chunk, budget), pos)
            if not block:
                break
            budget -= len(block)
            pos += len(block)
            data = carry + block
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                line = data[start:end]
                start = end + 1
                consumed = pos - (len(data) - start)
                if dropping:
                    dropping = False
                    s.extra.pop("_dropping", None)
                    self._advance(fd, consumed)
                    continue
                self._advance(fd, consumed)
                yield line
            carry = data[start:]
            if len(carry) > MAX_LINE:  # an unterminated monster line: skip it, keep memory bounded
                if not dropping:
                    self.skips.overlong += 1
                dropping = True
                s.extra["_dropping"] = True
                self._advance(fd, pos)
                carry = b""

    def _advance(self, fd: int, offset: int) -> None:
        self.state.offset = offset
        self.state.tail_hash = _tail_hash(fd, offset)
