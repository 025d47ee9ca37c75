"""`rmxdiag run` on a terminal: a progress line on stderr for slow runs, colour unless NO_COLOR.

The slow run is real: the target's registrar is a TCP listener that accepts and never speaks TLS
(a tarpit), so the mtls probe waits for its whole deadline.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tarpit() -> Iterator[int]:
    """Given a loopback port whose kernel accepts connections that nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def _run_on_tty(config: Path, extra_env: dict[str, str]) -> tuple[int, str, str]:
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    env = {**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, **extra_env}
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
                            stdout=out_slave, stderr=err_slave, stdin=subprocess.DEVNULL, env=env)
    os.close(out_slave)
    os.close(err_slave)
    try:
        err = _read_all(err_master, proc, 30)
        out = _read_all(out_master, proc, 5)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(out_master)
        os.close(err_master)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "rmxdiag.yaml"
    config.write_text(f"targets:\n  - name: rmx-slow\n    deadline: 2.5\n"
                      f"    registrars: [{{host: 127.0.0.1, port: {port}, sip_options: false}}]\n")
    return config


def test_slow_run_on_a_terminal_shows_progress_and_colour(tmp_path: Path, tarpit: int) -> None:
    # When a run that lasts over a second writes to a terminal
    code, out, err = _run_on_tty(_config(tmp_path, tarpit), {})
    # Then stderr showed a progress line (then cleared it) and the verdict is coloured
    assert code == 2, out + err
    assert "rmxdiag: probing 1 target(s)..." in err and "\x1b[K" in err
    assert "\x1b[31mCRITICAL: rmx-slow:" in out and "REGISTRAR_TLS_TIMEOUT" in out


def test_no_color_is_respected_on_a_terminal(tmp_path: Path, tarpit: int) -> None:
    # When NO_COLOR is set, Then the same run prints no escape sequence on stdout
    code, out, _err = _run_on_tty(_config(tmp_path, tarpit), {"NO_COLOR": "1"})
    assert code == 2 and "CRITICAL: rmx-slow:" in out and "\x1b[" not in out
