"""`rmxdiag serve` as a process: exit 78 on bad config, sd_notify, SIGHUP/POST reload, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import LabPKI
from tests.support.peers import free_port, wait_for_port

SERVE = [sys.executable, "-m", "daemon.cli", "serve"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _target(name: str) -> str:
    # A registrar on a port nothing listens on: the target has something to probe, nothing answers.
    return f"  - name: {name}\n    registrars:\n      - host: 127.0.0.1\n        port: 9\n"


def _config(tmp_path: Path, port: int, targets: str = _target("rmx-a")) -> Path:
    return _write(tmp_path / "rmxdiag.yaml",
                  f'settings:\n  listen: "127.0.0.1:{port}"\n  state_dir: state\nserver:\n  enable_lifecycle: true\n'
                  f"targets:\n{targets}")


def _serve(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, "-c", str(config)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env}, check=False)


def test_bad_config_at_start_exits_78_with_one_line_naming_the_file(tmp_path: Path) -> None:
    # Given a config with an unknown key
    bad = _write(tmp_path / "bad.yaml", "targets:\n  - name: a\n    bogus: 1\n")
    # When the daemon starts
    result = _serve(bad)
    # Then it exits 78 with one line that names the file, and no traceback
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "bogus" in lines[0]
    assert "Traceback" not in result.stderr


def test_undecryptable_pfx_at_start_exits_78_without_the_password(tmp_path: Path, lab_pki: LabPKI) -> None:
    # Given a PFX and a password file holding the wrong password
    pfx = tmp_path / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(b"right-password"))
    pfx.chmod(0o600)
    password = _write(tmp_path / "pfx.pass", "pfx-canary-wrong\n")
    password.chmod(0o600)
    config = _config(tmp_path, free_port(), _target("rmx-a") + "    certificate:\n      pfx: rmx.pfx\n"
                                            "      password_file: pfx.pass\n")
    # When the daemon starts
    result = _serve(config)
    # Then it exits 78 naming the PFX, and the password appears nowhere
    assert result.returncode == 78, result.stderr
    assert str(pfx) in result.stderr and "pfx-canary-wrong" not in result.stderr + result.stdout


def test_a_listen_address_in_use_exits_78_naming_the_config(tmp_path: Path) -> None:
    # Given the configured port already taken
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        config = _config(tmp_path, busy.getsockname()[1])
        # When the daemon starts
        result = _serve(config)
    # Then it exits 78 with one line naming the file and the setting
    assert result.returncode == 78, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert str(config) in line and "settings.listen" in line and "Traceback" not in result.stderr


def _recv_until(sock: socket.socket, wanted: str, timeout: float = 15.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            seen += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            break
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted} not received; got {seen}")


def _gauge(url: str) -> str:
    return next(line for line in requests.get(url + "/metrics", timeout=5).text.splitlines()
                if line.startswith("rmxdiag_config_last_reload_successful"))


@pytest.mark.slow
def test_notify_reload_and_stop_as_a_service(tmp_path: Path) -> None:
    # Given a notify socket in the abstract namespace (as systemd passes it) and a valid config
    name = f"rmxdiag-test-{os.getpid()}-{time.monotonic_ns()}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + name)
    port = free_port()
    config = _config(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*SERVE, "-c", str(config)], env={**os.environ, "NOTIFY_SOCKET": "@" + name,
                                                              "WATCHDOG_USEC": "2000000"},
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # Then READY=1 arrives and the endpoint answers; the watchdog is pinged
        _recv_until(notify, "READY=1")
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        _recv_until(notify, "WATCHDOG=1", timeout=5)
        assert _gauge(url).endswith(" 1.0")
        # When the file turns invalid and SIGHUP arrives
        _write(config, "targets: [\n")
        proc.send_signal(signal.SIGHUP)
        _recv_until(notify, "READY=1")
        # Then the old config keeps working and the reload gauge is 0
        assert _gauge(url).endswith(" 0.0")
        assert requests.get(url + "/probe", params={"target": "rmx-a"}, timeout=5).status_code == 200
        # When a valid file with another target is reloaded over HTTP
        _config(tmp_path, port, _target("rmx-b"))
        assert requests.post(url + "/-/reload", timeout=10).status_code == 200
        # Then the gauge is back to 1 and the new target replaced the old one
        assert _gauge(url).endswith(" 1.0")
        assert requests.get(url + "/probe", params={"target": "rmx-b"}, timeout=5).status_code == 200
        assert requests.get(url + "/probe", params={"target": "rmx-a"}, timeout=5).status_code == 404
        # When SIGTERM arrives
        proc.send_signal(signal.SIGTERM)
        _recv_until(notify, "STOPPING=1")
        # Then the daemon exits 0 within seconds
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        notify.close()
    assert "Traceback" not in stderr
    assert "reload failed, keeping the previous configuration" in stderr


def test_an_event_loop_stall_stops_the_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.config.model import Config
    from probes.target import Registrar, Settings, Target
    from tests.support.daemon import engine_runner, mtls_probe, running

    # Given a daemon with a 0.4 s watchdog (pings every 0.2 s) and our notify socket
    name = f"rmxdiag-stall-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        config = Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "s"),
                        (Target("t", registrars=(Registrar("fe"),)),))
        with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
            _recv_until(notify, "WATCHDOG=1", timeout=3)

            # When the event loop is blocked for 1.5 s
            stalled = threading.Event()

            def stall() -> None:
                stalled.set()
                time.sleep(1.5)
            d.loop.call_soon_threadsafe(stall)
            assert stalled.wait(5), "the loop never ran the stall"
            while True:  # drain what was sent before it
                notify.settimeout(0.05)
                try:
                    notify.recv(4096)
                except TimeoutError:
                    break
            notify.settimeout(1.0)
            during: list[str] = []
            try:
                during = notify.recv(4096).decode().splitlines()
            except TimeoutError:
                pass
            # Then no ping arrives while it is blocked, and pings resume afterwards
            assert "WATCHDOG=1" not in during
            _recv_until(notify, "WATCHDOG=1", timeout=3)
