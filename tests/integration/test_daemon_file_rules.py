"""`rmxdiag serve` with a secret that holds a NUL byte and a configuration path that turns into a FIFO:
start exits 78, a reload fails at once and keeps the running configuration, SIGTERM still stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import LabPKI
from tests.support.peers import free_port, wait_for_port

SERVE = [sys.executable, "-m", "daemon.cli", "serve"]
PASSWORD = b"pfx-password"


def _config(directory: Path, port: int) -> Path:
    """A target whose PFX is opened with a password file; its registrar is a port nothing listens on."""
    path = directory / "rmxdiag.yaml"
    path.write_text(f'settings:\n  listen: "127.0.0.1:{port}"\n  state_dir: state\nserver:\n  enable_lifecycle: true\n'
                    "targets:\n  - name: rmx-a\n    registrars:\n      - host: 127.0.0.1\n        port: 9\n"
                    "    certificate:\n      pfx: rmx.pfx\n      password_file: pfx.pass\n")
    return path


@pytest.fixture
def setup(tmp_path: Path, lab_pki: LabPKI) -> tuple[Path, Path]:
    """Given a valid configuration with a PFX and its password file (0600); returns (config, password file)."""
    pfx = tmp_path / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(PASSWORD))
    pfx.chmod(0o600)
    password = tmp_path / "pfx.pass"
    password.write_bytes(PASSWORD + b"\n")
    password.chmod(0o600)
    return _config(tmp_path, free_port()), password


@pytest.fixture
def daemon(setup: tuple[Path, Path]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Given the daemon running on that configuration (killed with its group if a test leaves it running)."""
    config, _ = setup
    port = int(config.read_text().split('127.0.0.1:')[1].split('"')[0])
    proc = subprocess.Popen([*SERVE, "-c", str(config)], stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)  # type: ignore[arg-type]
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def _reload_gauge(url: str) -> str:
    return next(line.split()[-1] for line in requests.get(url + "/metrics", timeout=10).text.splitlines()
                if line.startswith("rmxdiag_config_last_reload_successful"))


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM; the daemon must exit 0 within seconds. Returns its stderr."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert time.monotonic() - started < 15
    return proc.stderr.read() if proc.stderr else ""


def test_a_nul_byte_in_a_password_file_at_start_exits_78(setup: tuple[Path, Path]) -> None:
    # Given the password file holding a NUL byte
    config, password = setup
    password.write_bytes(b"pfx\0password\n")
    # When the daemon starts, Then exit 78 with one line naming the file (OpenSSL used to panic: exit 1)
    result = subprocess.run([*SERVE, "-c", str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(password) in lines[0] and "contains a NUL byte" in lines[0], result.stderr


def test_a_nul_byte_at_reload_keeps_the_running_config(setup: tuple[Path, Path],
                                                       daemon: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = daemon
    _, password = setup
    assert _reload_gauge(url) == "1.0"
    # Given the password file now holds a NUL byte, When the configuration is reloaded
    password.write_bytes(b"pfx\0password\n")
    answer = requests.post(url + "/-/reload", timeout=30)
    # Then the reload fails, says so on the gauge, and the daemon still answers /probe for the target
    assert answer.status_code == 500
    assert _reload_gauge(url) == "0.0"
    probed = requests.get(url + "/probe", params={"target": "rmx-a"}, timeout=60)
    assert probed.status_code == 200 and "probe_success" in probed.text
    # And SIGTERM stops it; the log names the file and has no traceback or panic
    stderr = _stop(proc)
    assert "Traceback" not in stderr and "panicked" not in stderr
    assert f"{password}: the PFX password file of target rmx-a cannot be read (contains a NUL byte" in stderr


def test_a_fifo_as_configuration_fails_the_reload_at_once(setup: tuple[Path, Path],
                                                          daemon: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = daemon
    config, _ = setup
    # (the reference: a reload of the valid file, on this machine now)
    started = time.monotonic()
    assert requests.post(url + "/-/reload", timeout=60).status_code == 200
    reference = time.monotonic() - started
    # Given the configuration path turned into a FIFO nobody writes to (a hung mount behaves alike)
    config.rename(config.with_name("real.yaml"))
    os.mkfifo(config)
    # When reloaded by SIGHUP and over HTTP
    proc.send_signal(signal.SIGHUP)
    answer = requests.post(url + "/-/reload", timeout=max(30.0, 20 * reference))
    # Then the reload fails at once (it used to wait for a writer forever) and the gauge says so
    assert answer.status_code == 500
    assert _reload_gauge(url) == "0.0"
    assert requests.get(url + "/probe", params={"target": "rmx-a"}, timeout=60).status_code == 200
    # And SIGTERM still stops the daemon within seconds
    stderr = _stop(proc)
    assert f"{config}: not a regular file" in stderr and "Traceback" not in stderr
