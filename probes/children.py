"""Child processes with ONE deadline, bounded output and no survivors: the only way rmxdiag runs a program.

Remediation commands, the capture worker (and the tshark/tcpdump it starts), dumpcap, ``tshark -v``
and grep all go through :class:`Child` (or :func:`run`):

- output is read incrementally as it arrives; what is not consumed is kept as a bounded tail
  (:class:`Tail`: the last bytes, and a count of what was dropped), so a flood costs CPU time
  until the deadline, never memory;
- one deadline covers the whole life of the child: writing its stdin, reading its output,
  waiting for its exit and draining its pipes;
- the whole process tree is ended when the leader exits (exit 0 included) and at the deadline.

Why the tree is found this way, not with a cgroup or a process-group kill alone: a group or
session kill misses a grandchild that called ``setsid()``; a cgroup would be exact, but the
systemd unit runs with ``ProtectControlGroups=yes`` and without ``Delegate=``, so the daemon
cannot create one. Instead the daemon makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``: no capability needed, and ``prctl`` is in the unit's
``SystemCallFilter=@system-service``), so a descendant whose parent dies is reparented to the
daemon instead of escaping to PID 1. Ending a tree stops (SIGSTOP) every process that belongs to
it, repeats the search until no new member appears (a stopped process cannot fork, which closes
the race with a process forking while it is being killed), then kills them all (SIGKILL) and
reaps the ones that became the daemon's children. A process belongs to a tree when it descends
from the leader by parent link, shares the leader's session, carries the tree's marker in its
environment (:data:`MARKER`), or holds one of the tree's pipes; in subreaper mode, any other child
of the daemon that no live tree claims is an escaped descendant (the daemon starts programs only
here) and is ended too. ``ProtectProc=invisible`` hides other users' processes only; the daemon
still sees its own, which is all this needs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import selectors
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from probes import proctree

log = logging.getLogger("rmxdiag.children")

MARKER = "RMXDIAG_PROCESS_TREE"  # environment variable naming the tree a process belongs to
_READ = 1 << 20

Stderr = Literal["stdout", "tail", "devnull"]

_LOCK = threading.RLock()
_LIVE: dict[int, Child] = {}  # leader pid -> its tree, while the tree runs
_MODE = {"subreaper": False, "closing": False}


def become_subreaper() -> bool:
    """Make this process the reaper of every orphaned descendant (the daemon calls it once at start)."""
    if not proctree.set_child_subreaper():
        log.warning("cannot become a child subreaper: a child's escaped descendants are found by session, "
                    "marker and pipe only")
        return False
    _MODE["subreaper"] = True
    return True


class Tail:
    """The last ``keep`` bytes written to it, and how many bytes were dropped before them."""

    def __init__(self, keep: int) -> None:
        self.keep = max(0, keep)
        self.dropped = 0
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        """Append ``data``, dropping the oldest bytes beyond ``keep``."""
        self._buf += data[-self.keep:] if self.keep else b""
        self.dropped += len(data) - min(len(data), self.keep)
        excess = len(self._buf) - self.keep
        if excess > 0:
            del self._buf[:excess]
            self.dropped += excess

    @property
    def data(self) -> bytes:
        """What is kept."""
        return bytes(self._buf)


@dataclass(frozen=True)
class Finished:
    """How one child ended: ``returncode`` None means it was killed at the deadline."""

    returncode: int | None
    output: bytes  # the last bytes of its output (stdout, with stderr when merged)
    dropped: int  # output bytes not kept
    errors: bytes  # the last bytes of stderr when kept apart
    leftovers: int  # processes of its tree still running after the leader ended (all killed)
    seconds: float

    @property
    def timed_out(self) -> bool:
        """True when the deadline ended it."""
        return self.returncode is None


class Child:
    """One running program and its process tree (a context manager: leaving it ends the tree).

    ``deadline`` is absolute (``time.monotonic()``). stdout is read with :meth:`read1` /
    :meth:`chunks` by the caller (or kept as :attr:`output` by :func:`run`); stderr is merged into
    stdout, kept apart as the tail :attr:`errors`, or discarded.
    """

    def __init__(self, argv: Sequence[str], *, deadline: float, env: Mapping[str, str] | None = None,
                 stdin: bytes | None = None, stderr: Stderr = "stdout", keep: int = 4096,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.deadline = deadline
        self.output = Tail(keep)
        self.errors = Tail(keep)
        self.timed_out = False
        self.leftovers = 0
        self.started = time.monotonic()
        self._token = secrets.token_hex(8)
        self._env = {**(os.environ if env is None else env), MARKER: self._token}
        self._stdin_data = stdin
        self._stderr = stderr
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._pidfd: int | None = None
        self._pipes: set[str] = set()
        self._stdout_open = False
        self._leader_done = False
        self._killed = False
        self._ended = False
        self._kill_lock = threading.Lock()

    # -- start ------------------------------------------------------------------------------------
    def __enter__(self) -> Child:
        if self._proc is None:  # not started by an explicit start() yet
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    @property
    def pid(self) -> int:
        """The leader's pid."""
        assert self._proc is not None  # noqa: S101 (started)
        return self._proc.pid

    def start(self) -> None:
        """Start the leader in its own session (OSError when it cannot start, or the daemon is stopping)."""
        with _LOCK:
            if _MODE["closing"]:
                raise OSError(errno.ESHUTDOWN, "rmxdiag is stopping")
            err = {"stdout": subprocess.STDOUT, "tail": subprocess.PIPE, "devnull": subprocess.DEVNULL}[self._stderr]
            self._proc = subprocess.Popen(  # noqa: S603 (fixed argv lists; never a shell)
                self.argv, stdin=subprocess.PIPE if self._stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err, env=self._env, cwd=self._cwd, start_new_session=True,
                close_fds=True)
            _LIVE[self._proc.pid] = self
        proc = self._proc
        self._sel = selectors.DefaultSelector()
        for stream, events in ((proc.stdout, selectors.EVENT_READ), (proc.stderr, selectors.EVENT_READ),
                               (proc.stdin, selectors.EVENT_WRITE)):
            if stream is not None:
                os.set_blocking(stream.fileno(), False)
                self._sel.register(stream.fileno(), events, stream)
                self._pipes.add(f"pipe:[{os.fstat(stream.fileno()).st_ino}]")
        self._stdout_open = True
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(proc.pid)  # readable when the leader exits (Linux 5.3+)
            self._sel.register(self._pidfd, selectors.EVENT_READ, "exit")
        if proc.stdin is not None and not self._stdin_data:
            self._close_stdin()

    # -- I/O --------------------------------------------------------------------------------------
    @property
    def _selector(self) -> selectors.BaseSelector:
        assert self._sel is not None  # noqa: S101 (started)
        return self._sel

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(proc.stdin.fileno())
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def _write_stdin(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None  # noqa: S101 (registered only then)
        data = self._stdin_data or b""
        try:
            written = os.write(proc.stdin.fileno(), data[:65536])
        except BlockingIOError:
            return
        except OSError:  # the child closed its stdin (EPIPE): it did not want the rest
            written = len(data)
        self._stdin_data = data[written:]
        if not self._stdin_data:
            self._close_stdin()

    def _leader_exited(self) -> None:
        """The leader ended: end what is left of its tree now, so nothing holds the pipes open."""
        if self._leader_done:
            return
        self._leader_done = True
        if self._pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._pidfd)
        self.kill(leader_exited=True)

    def _step(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` for one event; stdout data, b"" at stdout EOF, None otherwise."""
        proc = self._proc
        assert proc is not None  # noqa: S101 (started)
        if self._pidfd is None and not self._leader_done:
            timeout = min(timeout, 0.05)  # no pidfd: poll the leader
            if proc.poll() is not None:
                self._leader_exited()
        for key, _ in self._selector.select(max(0.0, timeout)):
            if key.data == "exit":
                self._leader_exited()
                continue
            if key.data is proc.stdin:
                self._write_stdin()
                continue
            try:
                chunk = os.read(key.fd, _READ)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if key.data is proc.stdout:
                if not chunk:
                    self._selector.unregister(key.fd)
                    self._stdout_open = False
                return chunk
            if chunk:
                self.errors.add(chunk)
            else:
                self._selector.unregister(key.fd)
        return None

    def read1(self, _size: int = _READ) -> bytes:
        """The next piece of stdout as soon as some is there; b"" at EOF or at the deadline."""
        while self._stdout_open:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._expire()
                return b""
            chunk = self._step(left)
            if chunk is not None:
                return chunk
        return b""

    def chunks(self) -> Iterator[bytes]:
        """stdout piece by piece until EOF or the deadline (:attr:`timed_out` tells which)."""
        while chunk := self.read1():
            yield chunk

    def _expire(self) -> None:
        if not self._leader_done:
            self.timed_out = True
        self.kill()

    def wait(self) -> int | None:
        """Read what is left (into :attr:`output`) and wait for the leader, both within the deadline.

        Returns the exit code (negative: killed by that signal), or None when the deadline ended it.
        """
        proc = self._proc
        assert proc is not None  # noqa: S101 (started)
        while self._stdout_open or not self._leader_done:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._expire()
                break
            chunk = self._step(left)
            if chunk:
                self.output.add(chunk)
        self.end()
        return None if self.timed_out else proc.returncode

    # -- ending -----------------------------------------------------------------------------------
    def kill(self, *, leader_exited: bool = False) -> None:
        """Stop and kill every process of the tree (safe from any thread; the owner still calls end())."""
        with self._kill_lock:
            if self._killed:
                return
            self._killed = True
            with _LOCK:
                members = _members(self)
                proctree.kill(members)
            others = len(members - {self.pid}) if self._proc is not None else 0
            self.leftovers = others if leader_exited else 0
            if leader_exited and others:
                log.info("ended %d leftover process(es) of %s after it exited", others, self.argv[0])
            proctree.reap(members - {self.pid})

    def end(self) -> None:
        """End the tree, reap the leader, close the pipes (idempotent; the owner thread calls it)."""
        if self._ended or self._proc is None:
            return
        self._ended = True
        proc = self._proc
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(proctree.REAP_WAIT)
        with _LOCK:
            _LIVE.pop(proc.pid, None)
        if self._sel is not None:
            self._sel.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._pidfd is not None:
            os.close(self._pidfd)

    def owns(self, proc: proctree.Proc) -> bool:
        """True when ``proc`` shares this tree's session, marker or pipes."""
        if self._proc is None:
            return False
        if proc.session == self._proc.pid:
            return True
        if proctree.environ_has(proc.pid, f"{MARKER}={self._token}\0".encode()):
            return True
        return bool(self._pipes & proctree.pipes_of(proc.pid))


def _unclaimed(proc: proctree.Proc) -> bool:
    """A child of the daemon that is no live tree's leader and that no live tree claims."""
    if proc.pid in _LIVE:
        return False
    return not any(other.owns(proc) for other in _LIVE.values())


def _members(child: Child) -> set[int]:
    """Find and stop every process of ``child``'s tree (the caller holds _LOCK)."""
    me = os.getpid()

    def belongs(proc: proctree.Proc) -> bool:
        return child.owns(proc) or (_MODE["subreaper"] and proc.ppid == me and _unclaimed(proc))

    return proctree.stop_tree(child.pid, belongs)


def sweep() -> int:
    """Subreaper mode: end and reap escaped descendants no live tree claims; how many (the daemon calls it)."""
    if not _MODE["subreaper"]:
        return 0
    me = os.getpid()
    with _LOCK:
        table = proctree.table()
        stray = [p for p in table.values() if p.ppid == me and _unclaimed(p)]
        proctree.kill({p.pid for p in stray if not p.zombie})
    proctree.reap({p.pid for p in stray})
    return len([p for p in stray if not p.zombie])


def stop_all(*, final: bool = False) -> int:
    """Kill every running tree now (daemon shutdown); ``final`` also refuses new children. How many."""
    with _LOCK:
        if final:
            _MODE["closing"] = True
        running = list(_LIVE.values())
    for child in running:
        child.kill()
    sweep()
    return len(running)


def run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, stdin: bytes | None = None,
        stderr: Stderr = "stdout", keep: int = 4096, cwd: Path | None = None) -> Finished:
    """Run ``argv`` to its end within ``timeout`` seconds (everything included); OSError if it cannot start."""
    with Child(argv, deadline=time.monotonic() + timeout, env=env, stdin=stdin, stderr=stderr, keep=keep,
               cwd=cwd) as child:
        code = child.wait()
    return Finished(code, child.output.data, child.output.dropped, child.errors.data, child.leftovers,
                    time.monotonic() - child.started)
