"""The daemon's state directory across restarts, reloads, crashes and hostile contents (real `rmxdiag serve`).

Cooldowns and the run sequence must survive a restart, `reports.keep` holds per target, a run
id never repeats and a stored report is never replaced, leftovers of a `kill -9` do not block
later reports, and nothing inside the state directory is followed through a symlink.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.peers import eventually
from tests.support.served import Served, daemon_dir, serve

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def _runs(d: Served, count: int, timeout: float = 20) -> list[str]:
    eventually(lambda: f"{count} stored runs ({len(d.runs())} so far)", lambda: len(d.runs()) >= count, timeout)
    return d.runs()


def _decision(d: Served, target: str = "rmx-a") -> str:
    answer = d.alert(target)
    assert answer.status_code == 202, answer.text
    decision: str = answer.json()["targets"][target]
    return decision


def _stamps(seconds: int) -> list[str]:
    """Run-id timestamps of this second and the next ``seconds`` seconds."""
    now = datetime.now(UTC)
    return [(now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%SZ") for s in range(seconds)]


def test_cooldown_survives_a_restart(tmp_path: Path) -> None:
    """Given a 300 s cooldown and one alert-driven run, When the daemon restarts and the alert fires again,
    Then the second alert is in cooldown and no second run is stored."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    config.write_text(config.read_text().replace("cooldown: 0", "cooldown: 300"))
    with serve(config, port) as d:
        first = _decision(d)
        _runs(d, 1)
        d.stop()
    with serve(config, port) as d:
        second = _decision(d)
        time.sleep(1.0)  # a run started by mistake would be stored by now
        runs = d.runs()
    print(f"cooldown across a restart: first alert {first}, after the restart {second}; {len(runs)} run(s) stored")
    assert (first, second, len(runs)) == ("started", "cooldown", 1)


def test_a_reload_that_drops_a_target_keeps_its_cooldown(tmp_path: Path) -> None:
    """Given a 300 s cooldown and one alert-driven run of rmx-a,
    When a reload drops rmx-a, another adds it back, and the alert fires again,
    Then the second alert is in cooldown and no second run is stored."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9, "rmx-b": 9})
    both = config.read_text().replace("cooldown: 0", "cooldown: 300")
    config.write_text(both)
    only_b = both.replace("  - name: rmx-a\n    registrars:\n      - host: 127.0.0.1\n        port: 9\n", "")
    assert "rmx-a" not in only_b
    with serve(config, port) as d:
        first = _decision(d)
        _runs(d, 1)
        for text, count in ((only_b, 1), (both, 2)):
            config.write_text(text)
            d.proc.send_signal(signal.SIGHUP)
            eventually(f"the reload to {count} target(s)", lambda c=count: f": {c} targets" in d.log())  # type: ignore[misc]
        second = _decision(d)
        time.sleep(1.0)  # a run started by mistake would be stored by now
        runs = d.runs()
    assert (first, second, len(runs)) == ("started", "cooldown", 1)


def test_reports_keep_holds_per_target(tmp_path: Path) -> None:
    """Given reports.keep 2 and one run of rmx-b, When rmx-a runs four times, Then rmx-a keeps its two newest
    runs and rmx-b's run is still there."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9, "rmx-b": 9}, "reports:\n  keep: 2\n")
    with serve(config, port) as d:
        assert _decision(d, "rmx-b") == "started"
        _runs(d, 1)
        for n in range(4):
            assert _decision(d, "rmx-a") == "started"
            eventually(f"run {n + 2} in the log", lambda n=n: d.log().count("troubleshooting run") >= n + 2, 20)
        time.sleep(0.3)
        runs = d.runs()
    per_target = {t: sum(1 for r in runs if r.endswith("-" + t)) for t in ("rmx-a", "rmx-b")}
    print(f"keep 2 per target: {per_target}")
    assert per_target == {"rmx-a": 2, "rmx-b": 1}


def test_run_ids_never_repeat_and_a_report_is_never_replaced(tmp_path: Path) -> None:
    """Given reports already stored under the ids a fresh sequence would give for the next seconds, When the
    daemon runs an alert, reloads (SIGHUP), runs again at once, restarts and runs a third time, Then three new
    ids are stored, all distinct, and every report that was there is byte-identical."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    reports = tmp_path / "state" / "reports"
    reports.mkdir(parents=True)
    planted = {}
    for stamp in _stamps(10):  # 30 reports: fewer than the default keep (50), so none is pruned
        for seq in range(1, 4):
            path = reports / f"{stamp}-{seq:04d}-rmx-a.json"
            path.write_text(f'{{"planted": "{stamp}-{seq}"}}\n')
            planted[path] = path.read_bytes()
    ids: list[str] = []
    with serve(config, port) as d:
        assert _decision(d) == "started"
        eventually('d.log().count("troubleshooting run") >= 1', lambda: d.log().count("troubleshooting run") >= 1, 20)
        d.proc.send_signal(signal.SIGHUP)
        eventually('"configuration reloaded" in d.log()', lambda: "configuration reloaded" in d.log(), 10)
        assert _decision(d) == "started"
        eventually('d.log().count("troubleshooting run") >= 2', lambda: d.log().count("troubleshooting run") >= 2, 20)
        ids += [line.split("troubleshooting run ")[1].split(":")[0] for line in d.log().splitlines()
                if "troubleshooting run" in line]
        d.stop()
    with serve(config, port) as d:
        assert _decision(d) == "started"
        eventually('"troubleshooting run" in d.log()', lambda: "troubleshooting run" in d.log(), 20)
        ids += [line.split("troubleshooting run ")[1].split(":")[0] for line in d.log().splitlines()
                if "troubleshooting run" in line]
    replaced = [p.name for p, data in planted.items() if not p.exists() or p.read_bytes() != data]
    print(f"run ids across a reload and a restart: {ids}; planted reports replaced or gone: {replaced}")
    assert len(ids) == 3 and len(set(ids)) == 3 and "(not stored)" not in ids
    assert all((reports / f"{i}.json").exists() for i in ids)
    assert replaced == []


def test_leftover_temporary_files_are_cleaned_and_do_not_block_a_report(tmp_path: Path) -> None:
    """Given the temporary files a `kill -9` leaves (named as the next runs' ids would be), When the daemon
    starts and an alert runs, Then the leftovers are gone and the run is stored."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    reports = tmp_path / "state" / "reports"
    reports.mkdir(parents=True)
    leftovers = [reports / f".{stamp}-{seq:04d}-rmx-a.tmp" for stamp in _stamps(30) for seq in range(1, 4)]
    for path in leftovers:
        path.write_bytes(b'{"half": ')
    with serve(config, port) as d:
        assert _decision(d) == "started"
        eventually('"troubleshooting run" in d.log()', lambda: "troubleshooting run" in d.log(), 20)
        stored = d.runs()
        log = d.log()
    left = [p.name for p in leftovers if p.exists()]
    print(f"{len(leftovers)} leftover temporary files: {len(left)} left after start; runs stored: {stored}")
    assert left == [] and len(stored) == 1 and "could not store" not in log


def test_nothing_is_followed_through_a_symlink_inside_the_state_directory(tmp_path: Path) -> None:
    """Given a `reports` directory that is a symlink to another directory holding unrelated files named like
    run ids (keep 1), When alerts run, Then no report is written there, none of those files is deleted, and the
    write is counted as failed; and a report file that is a symlink to a file outside is not served."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9}, "reports:\n  keep: 1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    unrelated = {elsewhere / f"20200101T00000{i}Z-000{i}-rmx-a.json": f"unrelated {i}\n".encode() for i in range(3)}
    for path, data in unrelated.items():
        path.write_bytes(data)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "reports").symlink_to(elsewhere)
    with serve(config, port) as d:
        assert _decision(d) == "started"
        eventually('"troubleshooting run" in d.log()', lambda: "troubleshooting run" in d.log(), 20)
        errors = d.metric("rmxdiag_report_write_errors_total")
        listed = d.runs()
        served = d.run(next(iter(unrelated)).name[:-5])
    kept = sorted(p.name for p in elsewhere.iterdir())
    print(f"symlinked reports directory: write errors {errors}, files there now {kept}, runs listed {listed}, "
          f"served {served}")
    assert kept == sorted(p.name for p in unrelated) and all(p.read_bytes() == b for p, b in unrelated.items())
    assert errors == 1.0 and listed == [] and "error" in served

    # A report file that is a symlink to an outside file
    (tmp_path / "state" / "reports").unlink()
    reports = tmp_path / "state" / "reports"
    reports.mkdir(mode=0o700)
    secret_file = tmp_path / "outside.json"
    secret_file.write_text('{"outside": "not a report"}\n')
    link_id = "20200101T000000Z-0001-rmx-a"
    (reports / f"{link_id}.json").symlink_to(secret_file)
    with serve(config, port) as d:
        answer = d.run(link_id)
        listed = d.runs()
    print(f"symlinked report file: served {answer}, listed {listed}")
    assert "outside" not in str(answer) and link_id not in listed
    assert secret_file.exists() and os.path.islink(reports / f"{link_id}.json")
