"""Reloads that overlap (a SIGHUP storm, SIGHUP and POST /-/reload together) against `rmxdiag serve`."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from daemon.config.model import Config, ServerConfig
from probes.target import Registrar, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually, free_port
from tests.support.served import daemon_dir, daemon_yaml, serve

pytestmark = [pytest.mark.slow]


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reload never reads half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _last_run(url: str, target: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(f'rmxdiag_last_run_timestamp_seconds{{target="{target}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_storm_of_overlapping_reloads_leaves_the_scheduler_running(tmp_path: Path) -> None:
    """Given `rmxdiag serve` scheduling 151 targets every second (a) and a config with one of them (b),
    When the file alternates between a and b under 100 SIGHUPs 30 ms apart while 6 clients POST
    /-/reload in a loop, and ends as a,
    Then every target of a runs again after the storm, /-/ready answers 200, the log holds no
    traceback, and SIGTERM exits 0."""
    closed = free_port()  # nothing listens: each run fails fast at connect
    names = {f"t{i:03d}": closed for i in range(150)}
    lifecycle = "server:\n  enable_lifecycle: true\n"
    config, port = daemon_dir(tmp_path, {"keep": closed, **names}, lifecycle, interval=1, schedule=True)
    full = config.read_text()
    small = daemon_yaml(port, {"keep": closed}, lifecycle, interval=1, schedule=True)
    with serve(config, port) as d:
        eventually("keep's first run", lambda: _last_run(d.url, "keep") > 0, timeout=20)
        # When the reloads overlap
        storm = threading.Event()

        def post_reloads() -> None:
            while not storm.is_set():
                requests.post(d.url + "/-/reload", timeout=60)

        with cf.ThreadPoolExecutor(6) as pool:
            posters = [pool.submit(post_reloads) for _ in range(6)]
            try:
                for i in range(100):
                    _replace(config, small if i % 2 == 0 else full)
                    d.proc.send_signal(signal.SIGHUP)
                    time.sleep(0.03)  # pacing, not an assertion: separate signals (pending ones merge)
            finally:
                storm.set()
            for poster in posters:
                poster.result()
        _replace(config, full)
        assert requests.post(d.url + "/-/reload", timeout=30).status_code == 200
        storm_end = time.time()
        # Then the scheduler still runs every target of the final configuration
        for name in ("keep", "t000", "t149"):
            eventually(f"{name} run after the storm", lambda n=name: _last_run(d.url, n) > storm_end,  # type: ignore[misc]
                       timeout=30)
        assert requests.get(d.url + "/-/ready", timeout=10).status_code == 200
        code, _ = d.stop()
        assert code == 0
        log = d.log()
    assert "Traceback" not in log and "KeyError" not in log and "stopped with a bug" not in log


def _config(tmp_path: Path) -> Config:
    targets = (Target("rmx-a", registrars=(Registrar("fe"),), deadline=1.0, interval=60),)
    return Config(tmp_path / "rmxdiag.yaml", Settings(state_dir=tmp_path / "state"), targets,
                  server=ServerConfig(enable_lifecycle=True))


def test_overlapping_reload_requests_read_the_file_one_at_a_time_and_the_latest_wins(tmp_path: Path) -> None:
    """Given a daemon whose config loader takes a while (it records how many reads overlap),
    When 8 clients POST /-/reload at the same time,
    Then no two reads of the file overlap, all 8 are answered 200, and the burst costs at most 2 reads."""
    config = _config(tmp_path)
    lock = threading.Lock()
    active, peak, reads = [0], [0], [0]

    def slow_loader(path: Path) -> Config:
        with lock:
            active[0] += 1
            reads[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)  # a slow read (a big file, a slow disk): gives the requests time to overlap
        with lock:
            active[0] -= 1
        return config

    with running(config, runner=engine_runner({"mtls": mtls_probe()}), loader=slow_loader) as d:
        with cf.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: requests.post(d.url + "/-/reload", timeout=30).status_code, range(8)))
    assert answers == [200] * 8
    assert peak[0] == 1, f"{peak[0]} reads of the config file overlapped"
    assert reads[0] <= 2, reads[0]


def test_a_scheduler_that_dies_fails_readiness_and_is_logged_once(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Given a running daemon, When its scheduler task dies of a bug,
    Then /-/ready answers 503 and one ERROR line names the task."""
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d:
        assert requests.get(d.url + "/-/ready", timeout=5).status_code == 200

        def broken_targets() -> None:
            d.daemon.scheduler.targets = None  # type: ignore[assignment]  # the next pass raises TypeError
            d.daemon.scheduler._wake.set()

        with caplog.at_level(logging.ERROR, logger="rmxdiag.daemon"):
            d.call(broken_targets)
            eventually("readiness failing", lambda: requests.get(d.url + "/-/ready", timeout=5).status_code == 503)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "scheduler" in r.getMessage()]
    assert len(errors) == 1 and "stopped with a bug" in errors[0], errors


def test_sighup_while_stopping_is_ignored_and_sigterm_exits_0(tmp_path: Path) -> None:
    """Given `rmxdiag serve` with 300 targets under a SIGHUP every 10 ms,
    When SIGTERM arrives, the file is changed to 7 targets, and SIGHUPs go on until the process exits,
    Then it exits 0 (not killed by SIGHUP), adopts no configuration after the SIGTERM (no reload to 7
    targets), and logs no 'Task exception was never retrieved'."""
    closed = free_port()
    config, port = daemon_dir(tmp_path, {f"t{i:03d}": closed for i in range(300)}, interval=60)
    seven = daemon_yaml(port, {f"s{i}": closed for i in range(7)}, interval=60)
    with serve(config, port) as d:
        for _ in range(50):  # the storm before the SIGTERM: reloads of the 300-target file
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.01)
        d.proc.send_signal(signal.SIGTERM)
        _replace(config, seven)
        deadline = time.monotonic() + 30
        while d.proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.005)
        code = d.proc.wait(10)
        time.sleep(0.2)  # the log reader drains the pipe (it ends at EOF)
        log = d.log()
    assert code == 0, f"exit {code}"
    assert "300 targets" in log, "no reload happened before the SIGTERM"
    assert ": 7 targets" not in log, "a reload was adopted after SIGTERM"
    assert "Task exception was never retrieved" not in log and "Traceback" not in log
