"""Remediation commands that misbehave, run by the real daemon (`rmxdiag serve`) on a real alert.

Each target's registrar is a closed loopback port, so every alert-driven run diagnoses
REGISTRAR_UNREACHABLE and runs the command bound to that code: a shell script that floods its
output, leaves grandchildren behind (in its group, in a new session, with a cleared environment)
or ignores SIGTERM. Every process a script starts carries a marker in its argv, so a survivor is
found wherever it was reparented.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.support.peers import eventually
from tests.support.reliability import serving
from tests.support.served import (
    daemon_dir,
    dripping_http,
    endless_http,
    kill_marked,
    log_seconds,
    marked,
    peak_rss_kib,
    serve,
    sleeper,
    zombies_of,
)

pytestmark = [pytest.mark.peer, pytest.mark.slow]
TIMEOUT_STOP_SEC = 20  # systemd/rmxdiag.service


def _actions(script: str, timeout: float) -> str:
    argv = ["/bin/sh", "-c", script]
    return (f"actions:\n  - code: REGISTRAR_UNREACHABLE\n    command: {json.dumps(argv)}\n"
            f"    timeout: {timeout}\n    dry_run: false\n")


def _marker(name: str) -> str:
    return f"/tmp/rmxdiag-action-{os.getpid()}-{name}"


def _one_run(d: object, count: int, timeout: float) -> list[dict[str, object]]:
    runs: list[str] = []

    def stored() -> bool:
        runs[:] = d.runs()  # type: ignore[attr-defined]
        return len(runs) >= count
    eventually(lambda: f"{count} stored runs ({len(runs)} so far)", stored, timeout)
    return [d.run(r) for r in runs]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "script", "timeout"), [
    # 1 GB as fast as a pipe takes it, then a last line: the tail must hold that line.
    ("one_gigabyte_then_exit", "yes rmxdiag-flood-line | head -c 1000000000; echo END-OF-FLOOD", 20),
    # Writing until the deadline ends it.
    ("flood_until_deadline", "exec yes rmxdiag-flood-line", 2),
], ids=["one_gigabyte_then_exit", "flood_until_deadline"])
def test_flooding_action_keeps_the_daemon_small(name: str, script: str, timeout: float, tmp_path: Path) -> None:
    """Given an action that floods stdout, When an alert runs it, Then the daemon's peak RSS grows by
    less than 64 MiB, the action ends within its timeout, and the report keeps the tail and counts the rest."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9}, _actions(script, timeout))
    with serve(config, port) as d:
        before = peak_rss_kib(d.pid)
        assert d.alert("rmx-a").status_code == 202
        doc = _one_run(d, 1, timeout + 30)[0]
        grown = peak_rss_kib(d.pid) - before
    action = doc["actions"][0]  # type: ignore[index]
    print(f"{name}: daemon peak RSS +{grown / 1024:.1f} MiB, action {action['outcome']} in "
          f"{action['duration_seconds']} s, kept {len(action['detail'])} chars, dropped "
          f"{action.get('output_dropped_bytes')} bytes")
    assert grown < 64 * 1024
    assert action["duration_seconds"] <= timeout + 1.0
    assert action.get("output_dropped_bytes", 0) > 10_000_000
    assert len(action["detail"]) < 4096 + 200
    if name == "one_gigabyte_then_exit":
        assert action["outcome"] == "ok" and "END-OF-FLOOD" in action["detail"]
    else:
        assert action["outcome"] == "timeout"


def test_grandchild_in_a_new_session_holding_stdout_cannot_wedge_the_run_workers(tmp_path: Path) -> None:
    """Given five targets whose action sleeps past its 3 s timeout and leaves a setsid grandchild holding
    stdout, When one alert names all five (4 run workers), Then all five runs are stored within two timeouts
    plus a margin, each action is a timeout within 3.5 s, no grandchild survives, and SIGTERM ends the daemon."""
    marker = _marker("wedge")
    script = f"setsid {sleeper(marker, 40)} &\nexec {sleeper(marker, 40)}"
    targets = {f"rmx-{i}": 9 for i in range(1, 6)}
    config, port = daemon_dir(tmp_path, targets, _actions(script, 3))
    try:
        with serve(config, port) as d:
            start = time.monotonic()
            assert d.alert(*targets).status_code == 202
            docs = _one_run(d, 5, 15)
            elapsed = time.monotonic() - start
            none_left = eventually(lambda: f"left behind: {marked(marker)}", lambda: not marked(marker), 3)
            code, stopped = d.stop()
        outcomes = [(a["outcome"], a["duration_seconds"]) for doc in docs for a in doc["actions"]]  # type: ignore[attr-defined]
        print(f"5 wedging actions: all stored after {elapsed:.2f} s; outcomes {outcomes}; SIGTERM exit {code} in "
              f"{stopped:.2f} s")
        assert elapsed < 2 * 3 + 4
        assert all(o == "timeout" and s <= 3.5 for o, s in outcomes), outcomes
        assert none_left, f"left behind: {marked(marker)}"
        assert code == 0 and stopped < 5
    finally:
        kill_marked(marker)


def test_grandchildren_of_an_action_that_exits_0_are_ended(tmp_path: Path) -> None:
    """Given an action that exits 0 at once after starting three grandchildren (one in its group, one in a
    new session with its output closed, one in a new session with a cleared environment and no fd of ours),
    When an alert runs it, Then the action is ok, none of the three outlives the run, and no zombie is left."""
    marker = _marker("exit0")
    quiet = "</dev/null >/dev/null 2>&1"
    script = (f"{sleeper(marker + '-group')} {quiet} &\n"
              f"setsid {sleeper(marker + '-session')} {quiet} &\n"
              f"setsid env -i {sleeper(marker + '-cleared')} {quiet} &\n"
              "exit 0")
    config, port = daemon_dir(tmp_path, {"rmx-a": 9}, _actions(script, 10))
    try:
        with serve(config, port) as d:
            assert d.alert("rmx-a").status_code == 202
            doc = _one_run(d, 1, 20)[0]
            gone = eventually(lambda: f"left behind: {marked(marker)}", lambda: not marked(marker), 3)
            zombies = zombies_of(d.pid)
        action = doc["actions"][0]  # type: ignore[index]
        print(f"exit 0 with three grandchildren: {action['outcome']} in {action['duration_seconds']} s, "
              f"detail {action['detail']!r}; survivors {marked(marker)}; zombies {zombies}")
        assert action["outcome"] == "ok"
        assert gone, f"left behind: {marked(marker)}"
        assert zombies == []
    finally:
        kill_marked(marker)


def test_sigterm_ends_the_daemon_within_the_stop_timeout_whatever_the_action_does(tmp_path: Path) -> None:
    """Given an action with a 120 s timeout that ignores SIGTERM and whose setsid grandchild (also ignoring
    SIGTERM) holds stdout, When the daemon gets SIGTERM while it runs, Then it exits 0 well within the unit's
    TimeoutStopSec and neither process survives."""
    marker = _marker("sigterm")
    script = (f"trap '' TERM\nsetsid sh -c \"trap '' TERM; exec {sleeper(marker, 120)}\" &\n"
              f"{sleeper(marker, 120)}\nsleep 120")
    config, port = daemon_dir(tmp_path, {"rmx-a": 9}, _actions(script, 120))
    try:
        with serve(config, port) as d:
            assert d.alert("rmx-a").status_code == 202
            eventually(lambda: "the action never started", lambda: len(marked(marker)) >= 2, 15)
            code, stopped = d.stop(timeout=TIMEOUT_STOP_SEC + 10)
        print(f"SIGTERM during a stubborn action: exit {code} in {stopped:.2f} s (TimeoutStopSec "
              f"{TIMEOUT_STOP_SEC})")
        assert code == 0 and stopped < 5
        eventually(lambda: f"left behind: {marked(marker)}", lambda: not marked(marker), 3)
    finally:
        kill_marked(marker)


def _http_action(url: str, timeout: float) -> str:
    return (f"actions:\n  - code: REGISTRAR_UNREACHABLE\n    http:\n      url: {url}\n"
            f"    timeout: {timeout}\n    dry_run: false\n")


def test_http_action_and_notification_against_a_dripping_peer_end_at_their_total_timeout(tmp_path: Path) -> None:
    """Given an HTTP action (timeout 2 s) and a notification (timeout 2 s) whose peer answers one byte
    every 0.25 s (every read makes progress; the whole answer takes 17 s), When an alert runs them,
    Then the action is a timeout within 2.5 s and the notification gives up within 2.5 s."""
    with serving(dripping_http(0.25)) as peer:
        url = f"http://127.0.0.1:{peer}/hook"
        extra = _http_action(url, 2) + f"notify:\n  url: {url}\n  timeout: 2\n"
        config, port = daemon_dir(tmp_path, {"rmx-a": 9}, extra)
        with serve(config, port) as d:
            assert d.alert("rmx-a").status_code == 202
            doc = _one_run(d, 1, 30)[0]
            eventually(lambda: "no notification outcome", lambda: "notification for rmx-a" in d.log(), 30)
            log = d.log().splitlines()
    action = doc["actions"][0]  # type: ignore[index]
    stored = next(line for line in log if "troubleshooting run" in line and "target=rmx-a" in line)
    notified = next(line for line in log if "notification for rmx-a" in line)
    notify_seconds = log_seconds(notified) - log_seconds(stored)
    print(f"dripping peer: action {action['outcome']} in {action['duration_seconds']} s ({action['detail']}); "
          f"notification ended {notify_seconds:.2f} s after the report: {notified.split(': ', 1)[1]}")
    assert action["outcome"] == "timeout" and action["duration_seconds"] <= 2.5
    assert notify_seconds <= 2.5


def test_http_action_answer_is_read_only_up_to_its_cap(tmp_path: Path) -> None:
    """Given an HTTP action whose peer answers 200 with a 512 MB body, When an alert runs it, Then the
    action is ok within a second and the daemon's peak RSS grows by less than 64 MiB."""
    with serving(endless_http(512 * 1024 * 1024)) as peer:
        config, port = daemon_dir(tmp_path, {"rmx-a": 9}, _http_action(f"http://127.0.0.1:{peer}/fix", 20))
        with serve(config, port) as d:
            before = peak_rss_kib(d.pid)
            assert d.alert("rmx-a").status_code == 202
            doc = _one_run(d, 1, 40)[0]
            grown = peak_rss_kib(d.pid) - before
    action = doc["actions"][0]  # type: ignore[index]
    print(f"512 MB answer: action {action['outcome']} in {action['duration_seconds']} s ({action['detail']}); "
          f"daemon peak RSS +{grown / 1024:.1f} MiB")
    assert action["outcome"] == "ok" and action["duration_seconds"] < 1.0
    assert grown < 64 * 1024
