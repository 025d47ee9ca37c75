"""The daemon's state directory: private files written atomically, and no symlink followed inside it.

The state directory itself may be a symlink (systemd's ``DynamicUser=`` makes
``/var/lib/rmxdiag`` one); everything inside it is opened relative to a descriptor of that
directory with ``O_NOFOLLOW``, so a symlink planted inside (a ``reports`` directory pointing
elsewhere, a report file pointing at another file) is refused instead of followed. Files are
written to a uniquely named ``.NAME.<random>.tmp`` (mode 0600, ``O_EXCL``), fsynced, then moved
into place; leftovers of a crash are removed by :func:`clean_temporary` at start.

:class:`DaemonState` keeps what must survive a restart in ``daemon.json``: the run sequence (run
ids never repeat) and when each target's cooldown started (wall-clock time, the only clock that
survives a restart). In the running process cooldowns are measured on the monotonic clock, so a
wall clock stepped back or forward changes nothing; a saved start that lies in the future (the
clock went back while the daemon was stopped) counts as "started at the restart", so a cooldown
never lasts longer than its length after a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from probes.fileio import write_atomic

log = logging.getLogger("rmxdiag.state")

STATE_FILE = "daemon.json"
_MAX_STATE = 1024 * 1024
_TEMPORARY = re.compile(r"^\..+\.tmp$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def open_dir(root: Path, name: str | None = None) -> int:
    """A descriptor of ``root`` (created 0700) or of its subdirectory ``name`` (created 0700, never a symlink).

    OSError (ELOOP/ENOTDIR for a symlink or a file in the way) when it cannot be used.
    """
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    top = os.open(root, _DIR_FLAGS)
    if name is None:
        return top
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=top)
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=top)
    finally:
        os.close(top)


def read_private(dir_fd: int, name: str, cap: int) -> bytes:
    """The bytes of regular file ``name`` in ``dir_fd`` (never through a symlink); OSError, ValueError over ``cap``."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{name} is not a regular file")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{name} is larger than {cap} bytes")
    return data


def own_regular(dir_fd: int, name: str) -> bool:
    """True when ``name`` is a regular file (not a symlink) owned by this process's user."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def clean_temporary(dir_fd: int) -> int:
    """Remove leftover ``.*.tmp`` files (a crash between create and rename); how many."""
    removed = 0
    with os.scandir(dir_fd) as entries:
        names = [e.name for e in entries if _TEMPORARY.match(e.name)]
    for name in names:
        if own_regular(dir_fd, name):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
                removed += 1
    return removed


class DaemonState:
    """The run sequence and the cooldown starts, kept in ``STATE_DIR/daemon.json`` across restarts."""

    def __init__(self, root: Path, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.root = root
        self.monotonic = monotonic
        self.wall = wall
        self._lock = threading.Lock()
        self.sequence = 0
        self.cooldowns: dict[str, float] = {}  # target -> wall-clock time its cooldown started (saved)
        self._started: dict[str, float] = {}  # target -> monotonic time its cooldown started (measured)
        self._load()

    def _load(self) -> None:
        try:
            fd = open_dir(self.root)
        except OSError as exc:
            log.error("state directory %s cannot be used: %s", self.root, exc.strerror or type(exc).__name__)
            return
        try:
            removed = clean_temporary(fd)
            if removed:
                log.info("removed %d temporary file(s) left in %s by an interrupted write", removed, self.root)
            doc: Any = json.loads(read_private(fd, STATE_FILE, _MAX_STATE))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s/%s is unusable (%s): starting with an empty cooldown list", self.root, STATE_FILE,
                        getattr(exc, "strerror", None) or type(exc).__name__)
            return
        finally:
            os.close(fd)
        if isinstance(doc, dict):
            seq = doc.get("sequence")
            self.sequence = seq if isinstance(seq, int) and seq >= 0 else 0
            cooldowns = doc.get("cooldowns")
            if isinstance(cooldowns, dict):
                self.cooldowns = {k: float(v) for k, v in cooldowns.items()
                                  if isinstance(k, str) and isinstance(v, int | float)}
                mono, wall = self.monotonic(), self.wall()
                # Elapsed by the wall clock since the saved start; a start in the future counts as now.
                self._started = {k: mono - max(0.0, wall - v) for k, v in self.cooldowns.items()}

    def _save(self) -> None:
        data = json.dumps({"sequence": self.sequence, "cooldowns": self.cooldowns}, indent=1).encode()
        try:
            fd = open_dir(self.root)
            try:
                write_atomic(STATE_FILE, data, dir_fd=fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("could not save %s/%s: %s (cooldowns and run ids restart from memory)", self.root,
                      STATE_FILE, exc.strerror or type(exc).__name__)

    def next_sequence(self) -> int:
        """A run sequence number never handed out before (saved before it is returned)."""
        with self._lock:
            self.sequence += 1
            self._save()
            return self.sequence

    def cooling(self, name: str, cooldown: float) -> bool:
        """True when ``name``'s cooldown, started at its last run, has not ended (monotonic clock)."""
        started = self._started.get(name)
        return started is not None and self.monotonic() - started < cooldown

    def start_cooldown(self, names: list[str]) -> None:
        """Record that runs of ``names`` started now (one save for all of them)."""
        if not names:
            return
        with self._lock:
            mono, wall = self.monotonic(), self.wall()
            for name in names:
                self._started[name] = mono
                self.cooldowns[name] = wall
            self._save()

    def at_least(self, sequence: int) -> None:
        """Never hand out ``sequence`` or a lower number again (a lost or older ``daemon.json``)."""
        with self._lock:
            if sequence > self.sequence:
                self.sequence = sequence
                self._save()

    def forget(self, keep: set[str], cooldown: float) -> None:
        """Drop the ended cooldowns of targets no longer configured (a target dropped by a reload and
        added back keeps a cooldown still running: the names are kept until it has passed)."""
        with self._lock:
            now = self.monotonic()
            drop = {k for k in self.cooldowns
                    if k not in keep and now - self._started.get(k, now - cooldown) >= cooldown}
            if drop:
                self.cooldowns = {k: v for k, v in self.cooldowns.items() if k not in drop}
                self._started = {k: v for k, v in self._started.items() if k not in drop}
                self._save()
