"""Daemon-side faults: a misbehaving tshark, reloads that must fail, a full state directory,
SIGTERM in the middle of a capture, an event loop that stalls, and hostile HTTP clients.

The daemon runs as a real process (`rmxdiag serve`) where the fault is about the process (exit
codes, signals, rlimits, /proc); in-process otherwise. Fake tshark programs are fault injectors
placed first on PATH (the real tshark is exercised by the capture tests).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from daemon.config.model import Config
from probes.capture import probe as capture
from probes.capture.result import CaptureResult
from probes.target import Registrar, Settings, Target
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import children_of, eventually, free_port
from tests.support.served import TOKEN, alive, marked, serve, zombies_of
from tests.support.served import metric as _metric
from tests.support.served import secret as _secret
from tests.support.served import write as _write

pytestmark = [pytest.mark.peer, pytest.mark.slow]
CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "capture" / "healthy12.pcapng"


def _fake_tshark(d: Path, body: str) -> str:
    """A directory holding a `tshark` that answers -v like 4.0.17 and otherwise runs ``body``."""
    fake = d / "fakebin"
    fake.mkdir(exist_ok=True)
    script = fake / "tshark"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-v" ]; then echo "TShark (Wireshark) 4.0.17"; exit 0; fi\n{body}\n')
    script.chmod(0o755)
    return f"{fake}:{os.environ['PATH']}"


# A process whose argv carries a unique marker, so an orphan is found wherever it was reparented
# (`sleep 300 MARKER` would fail at once: sleep takes no such argument).
_SLEEPER = f"{sys.executable} -c 'import time; time.sleep(300)' {{marker}}"
_GRANDCHILD = _SLEEPER + " &"


@pytest.mark.parametrize(("name", "body", "warns"), [
    # Whether a tshark killed by a signal is reported is racy (see the xfail test below).
    ("crash_after_partial_output", "echo 'E {{}}'; kill -SEGV $$", None),
    ("stderr_flood", "yes 'tshark: flooding stderr' >&2", True),
    ("grandchild_keeps_pipe", _GRANDCHILD + "\nexec " + _SLEEPER, True),
    # tshark exits at once but its grandchild holds the output pipe: the deadline ends it.
    ("grandchild_then_exit", _GRANDCHILD + "\nexit 0", True),
], ids=["crash_after_partial_output", "stderr_flood", "grandchild_keeps_pipe", "grandchild_then_exit"])
def test_misbehaving_tshark_is_bounded_and_leaves_nothing(name: str, body: str, warns: bool | None,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a tshark that crashes, floods stderr or leaves a grandchild, When a capture is inspected with
    a 3 s deadline, Then a result with a warning in time, and no orphan, zombie or marker process."""
    marker = f"/tmp/rmxdiag-fault-{os.getpid()}-{name}"
    monkeypatch.setenv("PATH", _fake_tshark(tmp_path, body.replace("{marker}", marker)))
    start = time.monotonic()
    outcome = capture.inspect([CAPTURE], 5061, deadline=time.monotonic() + 3)
    elapsed = time.monotonic() - start
    print(f"{name}: {elapsed:.2f} s, warnings={getattr(outcome.result, 'warnings', None)}")
    assert elapsed < 3 + 2  # the deadline plus the kill grace
    assert isinstance(outcome.result, CaptureResult), outcome.error
    if warns is not None:
        assert bool(outcome.result.warnings) is warns  # the damage is said, not hidden
    eventually(lambda: f"no orphan left: {marked(marker)}", lambda: not marked(marker), 3)
    assert zombies_of(os.getpid()) == []


def test_tshark_killed_by_a_signal_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a tshark that dies of SIGSEGV, When inspected, Then a warning says the extraction crashed."""
    monkeypatch.setenv("PATH", _fake_tshark(tmp_path, "kill -SEGV $$"))
    results = [capture.inspect([CAPTURE], 5061, deadline=time.monotonic() + 3).result for _ in range(3)]
    assert all(isinstance(r, CaptureResult) and r.warnings for r in results), results


def _yaml(port: int, registrar: int, extra: str = "", capture_file: str | None = None) -> str:
    text = (f'settings:\n  listen: "127.0.0.1:{port}"\n  state_dir: state\n  interval: 1\n  deadline: 0.5\n'
            f"targets:\n  - name: rmx-a\n    registrars:\n      - host: 127.0.0.1\n        port: {registrar}\n")
    if capture_file:
        text += f"    capture:\n      files:\n        - {capture_file}\n"
    return text + extra + "webhook:\n  token_file: token\n  cooldown: 1\nserver:\n  enable_lifecycle: true\n"


def _alert(url: str) -> int:
    doc = {"version": "4", "status": "firing",
           "alerts": [{"status": "firing", "labels": {"alertname": "X", "target": "rmx-a"}}]}
    return requests.post(url + "/api/v1/alerts", json=doc, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=5).status_code


def test_invalid_reloads_keep_the_old_config(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given a running daemon, When reloads bring a syntax error, a schema error, a missing file and a
    PFX password that does not open the PFX, Then each keeps the old config working with the gauge at 0."""
    d = tmp_path
    _secret(d / "token", TOKEN.encode())
    _secret(d / "rmx.pfx", lab_pki.rmx.pfx(b"right-pw"))
    _secret(d / "pfx.pass", b"right-pw\n")
    port = free_port()
    pfx = "    certificate:\n      pfx: rmx.pfx\n      password_file: pfx.pass\n"
    good = _yaml(port, 9, pfx)
    config = _write(d / "rmxdiag.yaml", good)
    url = f"http://127.0.0.1:{port}"
    broken = {
        "syntax": lambda: _write(config, good + "targets: [\n"),
        "schema": lambda: _write(config, good.replace("  interval: 1\n", "  interval: 1\n  bogus_key: 1\n")),
        "missing_file": config.unlink,
        "wrong_pfx_password": lambda: _secret(d / "pfx.pass", b"wrong-pw\n"),
    }
    with peers.tarpit(), serve(config, port) as served:
        proc = served.proc
        assert _metric(url, "rmxdiag_config_last_reload_successful") == 1.0
        for name, breaking in broken.items():
            breaking()
            answer = requests.post(url + "/-/reload", timeout=15)
            assert answer.status_code >= 400, (name, answer.status_code)
            assert _metric(url, "rmxdiag_config_last_reload_successful") == 0.0, name
            assert requests.get(url + "/probe", params={"target": "rmx-a"}, timeout=10).status_code == 200, name
            # Restore, and a good reload brings the gauge back
            _write(config, good)
            _secret(d / "pfx.pass", b"right-pw\n")
            assert requests.post(url + "/-/reload", timeout=15).status_code == 200, name
            assert _metric(url, "rmxdiag_config_last_reload_successful") == 1.0, name
        assert proc.poll() is None
    text = (d / "serve.log").read_text()
    assert "Traceback" not in text and "wrong-pw" not in text


def test_full_state_directory_is_counted_and_harmless(tmp_path: Path) -> None:
    """Given a stored report, When the daemon's RLIMIT_FSIZE drops to 64 bytes and alerts keep coming,
    Then the failed writes are counted, the old report is intact, no temp file is left, probing goes on."""
    d = tmp_path
    _secret(d / "token", TOKEN.encode())
    port = free_port()
    config = _write(d / "rmxdiag.yaml", _yaml(port, 9))
    url = f"http://127.0.0.1:{port}"
    reports = d / "state" / "reports"
    with serve(config, port) as served:
        proc = served.proc
        assert _alert(url) == 202
        eventually("one stored report", lambda: len(list(reports.glob("*.json"))) == 1)
        first = next(reports.glob("*.json"))
        before = first.read_bytes()
        # The state directory is "full" for the daemon (and children it forks) from now on.
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (64, 64))
        time.sleep(1.1)  # past the cooldown
        assert _alert(url) == 202
        eventually("a report write error", lambda: (_metric(url, "rmxdiag_report_write_errors_total") or 0) >= 1)
        stamp = _metric(url, "rmxdiag_last_run_timestamp_seconds")
        eventually("scheduled probing to go on",
                   lambda: (_metric(url, "rmxdiag_last_run_timestamp_seconds") or 0) > (stamp or 0))
        assert proc.poll() is None
    assert first.read_bytes() == before
    assert sorted(p.name for p in reports.iterdir()) == [first.name]  # no temp file, no partial report
    assert "could not store the report" in (d / "serve.log").read_text()


def test_sigterm_during_a_capture_stops_cleanly(tmp_path: Path) -> None:
    """Given a scheduled capture whose tshark (and its grandchild) hangs, When SIGTERM arrives,
    Then the daemon exits 0 within seconds and no process of its tree is left anywhere."""
    d = tmp_path
    _secret(d / "token", TOKEN.encode())
    shutil.copyfile(CAPTURE, d / "capture.pcapng")
    marker = f"/tmp/rmxdiag-sigterm-{os.getpid()}"
    path = _fake_tshark(d, (_GRANDCHILD + "\nexec " + _SLEEPER).replace("{marker}", marker))
    port = free_port()
    config = _write(d / "rmxdiag.yaml", _yaml(port, 9, capture_file="capture.pcapng").replace(
        "deadline: 0.5", "deadline: 30").replace("interval: 1", "interval: 60"))
    with serve(config, port, env={"PATH": path}) as served:
        proc = served.proc
        eventually("the capture to start", lambda: len(marked(marker)) >= 2, 15)
        tree = children_of(proc.pid)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        stopped = time.monotonic() - start
    print(f"SIGTERM during capture: exit {code} in {stopped:.2f} s; tree had {len(tree)} processes")
    assert code == 0 and stopped < 5.0
    eventually(lambda: f"nothing left behind: {marked(marker)}", lambda: not marked(marker), 3)
    # Killed grandchildren are reparented to PID 1, which reaps them in its own time: dead is enough.
    assert not [p for p in tree if alive(p)]


def test_event_loop_stall_stops_the_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given our own NOTIFY_SOCKET and WATCHDOG_USEC, When the daemon's event loop is blocked for 2 s
    (probe threads keep running), Then no WATCHDOG=1 arrives during the stall, and pings resume after."""
    name = f"rmxdiag-wd-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "state", interval=1, deadline=0.5),
                    (Target("rmx-a", registrars=(Registrar("127.0.0.1", 9),)),))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.settimeout(0.05)

        def pings(seconds: float) -> int:
            count, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    count += notify.recv(4096).decode().splitlines().count("WATCHDOG=1")
            return count

        with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
            healthy = pings(1.0)
            d.loop.call_soon_threadsafe(time.sleep, 2.0)  # a blocking call on the loop: the stall
            pings(0.1)  # drain a ping sent just before the stall began
            stalled = pings(1.7)
            resumed = pings(1.5)
    print(f"watchdog pings per window: healthy {healthy}, stalled {stalled}, resumed {resumed}")
    assert healthy >= 3
    assert stalled == 0
    assert resumed >= 3
