"""probes.children with real processes: one deadline, a bounded tail, and no survivor in the tree.

Every process a test starts carries a marker in its argv, so a survivor is found wherever it was
reparented; the subreaper case runs in its own Python process (the test runner must not become
one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from probes import children
from tests.support.peers import eventually
from tests.support.served import kill_marked, marked, sleeper, zombies_of

QUIET = "</dev/null >/dev/null 2>&1"


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique argv marker; whatever carries it is killed after the test."""
    mark = f"/tmp/rmxdiag-children-{os.getpid()}-{request.node.name}"
    yield mark
    kill_marked(mark)


def test_flood_keeps_only_the_tail_and_counts_the_rest() -> None:
    """Given a program writing 50 MB then a last line, When run with keep=1000, Then the output is the last
    1000 bytes (ending with that line), the dropped count is exact, and the exit code is 0."""
    done = children.run(["/bin/sh", "-c", "head -c 50000000 /dev/zero; echo LAST"], timeout=20, keep=1000)
    print(f"50 MB flood: {done.seconds:.2f} s, kept {len(done.output)}, dropped {done.dropped}")
    assert done.returncode == 0
    assert len(done.output) == 1000 and done.output.endswith(b"LAST\n")
    assert done.dropped == 50_000_005 - 1000


def test_deadline_covers_a_grandchild_in_a_new_session_that_holds_the_pipe(marker: str) -> None:
    """Given a leader that sleeps and a setsid grandchild holding stdout, When run with a 1 s timeout,
    Then it returns by 1.5 s as a timeout and neither process survives."""
    script = f"setsid {sleeper(marker)} &\nexec {sleeper(marker)}"
    done = children.run(["/bin/sh", "-c", script], timeout=1.0)
    print(f"setsid pipe holder: {done.seconds:.2f} s, returncode {done.returncode}")
    assert done.timed_out and done.seconds < 1.5
    eventually(lambda: marked(marker), lambda: not marked(marker), 2)


def test_exit_0_ends_what_the_leader_left_in_its_group_and_session(marker: str) -> None:
    """Given a leader that exits 0 after starting a background process and a setsid one holding stdout,
    When run, Then it returns at once with exit 0, two leftovers counted, none alive, no zombie here."""
    script = f"{sleeper(marker)} {QUIET} &\nsetsid {sleeper(marker)} &\necho started\nexit 0"
    done = children.run(["/bin/sh", "-c", script], timeout=10)
    print(f"exit 0 with leftovers: {done.seconds:.2f} s, leftovers {done.leftovers}, output {done.output!r}")
    assert done.returncode == 0 and done.seconds < 2 and done.output == b"started\n"
    assert done.leftovers == 2
    eventually(lambda: marked(marker), lambda: not marked(marker), 2)
    assert zombies_of(os.getpid()) == []


def test_subreaper_ends_a_grandchild_that_left_every_trace(marker: str) -> None:
    """Given a subreaper process (as the daemon is) running a leader that starts a grandchild in a new
    session, with a cleared environment and none of our fds, then exits 0, When the run ends, Then the
    grandchild is ended and reaped (no zombie of the subreaper)."""
    script = f"setsid env -i {sleeper(marker)} {QUIET} &\nsleep 0.2\nexit 0"
    code = ("import json, os, time\nfrom probes import children\nassert children.become_subreaper()\n"
            f"done = children.run(['/bin/sh', '-c', {script!r}], timeout=10)\n"
            "time.sleep(0.2)\n"
            "zombies = [p for p in os.listdir('/proc') if p.isdigit() and "
            "open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[:2] == ['Z', str(os.getpid())]]\n"
            "print(json.dumps({'code': done.returncode, 'leftovers': done.leftovers, 'zombies': zombies}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    result = json.loads(out.stdout)
    print(f"escaped grandchild under a subreaper: {result}")
    assert result == {"code": 0, "leftovers": 1, "zombies": []}
    eventually(lambda: marked(marker), lambda: not marked(marker), 2)


def test_a_fork_loop_is_ended_completely(marker: str) -> None:
    """Given a leader that starts background sleepers in a loop, When its 0.5 s deadline passes,
    Then every one of them is stopped and killed (none alive a moment later)."""
    script = f"while :; do {sleeper(marker)} {QUIET} & sleep 0.01; done"
    done = children.run(["/bin/sh", "-c", script], timeout=0.5)
    print(f"fork loop: {done.seconds:.2f} s")
    assert done.timed_out and done.seconds < 3
    eventually(lambda: marked(marker), lambda: not marked(marker), 2)


def test_a_child_that_never_reads_its_stdin_cannot_stretch_the_deadline(marker: str) -> None:
    """Given 1 MiB for the stdin of a program that never reads it, When run with a 1 s timeout,
    Then it returns as a timeout by 1.5 s."""
    done = children.run(["/bin/sh", "-c", f"exec {sleeper(marker)}"], timeout=1.0, stdin=b"x" * (1 << 20))
    assert done.timed_out and done.seconds < 1.5


def test_stop_all_ends_running_trees_from_another_thread(marker: str) -> None:
    """Given two children with a 60 s deadline in two threads, When stop_all() is called,
    Then both threads return within a second and nothing survives."""
    results: list[children.Finished] = []
    threads = [threading.Thread(target=lambda: results.append(children.run(
        ["/bin/sh", "-c", f"setsid {sleeper(marker)} &\nexec {sleeper(marker)}"], timeout=60))) for _ in range(2)]
    for t in threads:
        t.start()
    eventually('len(marked(marker)) >= 4', lambda: len(marked(marker)) >= 4, 10)
    start = time.monotonic()
    assert children.stop_all() == 2
    for t in threads:
        t.join(5)
    print(f"stop_all: both returned in {time.monotonic() - start:.2f} s")
    assert len(results) == 2 and time.monotonic() - start < 1.5
    eventually(lambda: marked(marker), lambda: not marked(marker), 2)


def test_sweep_reaps_and_ends_children_no_tree_claims(marker: str) -> None:
    """Given a subreaper with a dead and a live child that no tree started (as an escaped descendant
    would be), When sweep() runs, Then the live one is killed and neither is left as a zombie."""
    code = ("import json, os, subprocess, time\nfrom probes import children\nassert children.become_subreaper()\n"
            "dead = subprocess.Popen(['true'])\n"
            f"live = subprocess.Popen([{sys.executable!r}, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
            "time.sleep(0.3)\nended = children.sweep()\ntime.sleep(0.2)\n"
            "zombies = [p for p in os.listdir('/proc') if p.isdigit() and "
            "open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[:2] == ['Z', str(os.getpid())]]\n"
            "print(json.dumps({'ended': ended, 'zombies': zombies}))\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=30,
                         check=True)
    result = json.loads(out.stdout)
    print(f"sweep: {result}")
    assert result == {"ended": 1, "zombies": []}
    assert not marked(marker)
