"""The /proc side of ending a process tree: find its members, stop them, kill them, reap them.

Pure mechanics for :mod:`probes.children`, which decides what belongs to a tree. Stopping every
member (SIGSTOP) before killing any, and searching again until no new member appears, closes the
race with a process that forks while its tree is being killed: a stopped process cannot fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 64  # stop-and-search rounds; a fork bomb is stopped long before this
REAP_WAIT = 2.0  # seconds to wait for a killed process to become reapable


def set_child_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to this process."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Proc:
    """One process as /proc/PID/stat shows it."""

    pid: int
    ppid: int
    session: int
    zombie: bool


def table() -> dict[int, Proc]:
    """Every process this one can see in /proc (pid, parent, session, zombie)."""
    found: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        found[int(name)] = Proc(int(name), int(fields[1]), int(fields[3]), fields[0] == b"Z")
    return found


def environ_has(pid: int, needle: bytes) -> bool:
    """True when process ``pid``'s initial environment contains ``needle``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read()
    except OSError:
        return False  # another user's process, or a non-dumpable one (file capabilities)


def pipes_of(pid: int) -> set[str]:
    """The pipes (``pipe:[inode]``) process ``pid`` holds open."""
    held: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("pipe:"):
                    held.add(target)
    return held


def stop_tree(leader: int, belongs: Callable[[Proc], bool]) -> set[int]:
    """Find and SIGSTOP ``leader``, its descendants by parent link and every process ``belongs`` claims.

    Searches again after each round of stops until nothing new appears; returns the members.
    """
    me = os.getpid()
    members: set[int] = set()
    judged: set[int] = set()  # pids already offered to ``belongs`` (reading /proc per process costs)
    for _ in range(_MAX_ROUNDS):
        new: set[int] = set()
        for proc in table().values():
            if proc.pid == me or proc.pid in members or proc.zombie:
                continue
            if leader in (proc.pid, proc.ppid) or proc.ppid in members:
                new.add(proc.pid)
            elif proc.pid not in judged:
                judged.add(proc.pid)
                if belongs(proc):
                    new.add(proc.pid)
        if not new:
            break
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        members |= new
    return members


def kill(pids: set[int]) -> None:
    """SIGKILL each of ``pids`` (a stopped process dies of it too)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def reap(pids: set[int]) -> None:
    """Reap killed processes that become this process's children (reparented to the subreaper).

    A killed process whose parent is also being killed is reparented only once that parent is
    gone: wait for that (bounded), and leave alone what another process will reap.
    """
    me = os.getpid()
    pending = set(pids)
    end = time.monotonic() + REAP_WAIT
    while pending and time.monotonic() < end:
        procs = table()
        for pid in list(pending):
            proc = procs.get(pid)
            if proc is None:
                pending.discard(pid)
            elif proc.ppid == me and proc.zombie:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                pending.discard(pid)
            elif proc.ppid != me and (proc.ppid not in pids or proc.ppid not in procs):
                pending.discard(pid)  # its parent (not ours to kill) or init reaps it
        if pending:
            time.sleep(0.01)
