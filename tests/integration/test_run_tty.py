"""`rmxdiag run` on a terminal: a progress line on stderr for slow runs (never on a pipe), colour
unless NO_COLOR or TERM=dumb, and Ctrl-C that stops the run at once with the partial report.

The slow run is real: the target's registrar is a TCP listener that accepts and never speaks TLS
(a tarpit), so the mtls probe waits for its whole deadline.
"""

from __future__ import annotations

import os
import pty
import select
import signal
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
    assert "rmxdiag: probing 1 target(s): 0 done" in err and "\x1b[K" in err
    assert "\x1b[31mCRITICAL: rmx-slow:" in out and "REGISTRAR_TLS_TIMEOUT" in out


def test_no_color_is_respected_on_a_terminal(tmp_path: Path, tarpit: int) -> None:
    # When NO_COLOR is set, Then the same run prints no escape sequence on stdout
    code, out, _err = _run_on_tty(_config(tmp_path, tarpit), {"NO_COLOR": "1"})
    assert code == 2 and "CRITICAL: rmx-slow:" in out and "\x1b[" not in out


def test_term_dumb_disables_colour_like_no_color(tmp_path: Path, tarpit: int) -> None:
    # When TERM=dumb (a terminal that cannot show escapes), Then no escape sequence on stdout
    code, out, _err = _run_on_tty(_config(tmp_path, tarpit), {"TERM": "dumb"})
    assert code == 2 and "CRITICAL: rmx-slow:" in out and "\x1b[" not in out


def test_no_progress_on_a_pipe(tmp_path: Path, tarpit: int) -> None:
    # When the same slow run writes to pipes (a script, cron, a monitoring system)
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "-c", str(_config(tmp_path, tarpit))],
                          capture_output=True, text=True, timeout=60, check=False)
    # Then stderr stays empty: no progress line, no carriage return, no escape
    assert done.returncode == 2 and done.stderr == ""
    assert "\r" not in done.stdout and "\x1b[" not in done.stdout


def _two_targets(tmp_path: Path, tarpit: int, closed: int) -> Path:
    config = tmp_path / "two.yaml"
    config.write_text(f"targets:\n"
                      f"  - name: rmx-quick\n    deadline: 20\n"
                      f"    registrars: [{{host: 127.0.0.1, port: {closed}, sip_options: false}}]\n"
                      f"  - name: rmx-slow\n    deadline: 20\n"
                      f"    registrars: [{{host: 127.0.0.1, port: {tarpit}, sip_options: false}}]\n")
    return config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ctrl_c_stops_the_run_at_once_with_the_partial_report(tmp_path: Path, tarpit: int) -> None:
    # Given a reference: how long a run of the quick target alone takes on this machine right now
    closed = _closed_port()
    config = _two_targets(tmp_path, tarpit, closed)
    start = time.monotonic()
    alone = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "-c", str(config), "--target", "rmx-quick"],
                           capture_output=True, text=True, timeout=60, check=False)
    reference = time.monotonic() - start
    assert alone.returncode == 2 and "REGISTRAR_UNREACHABLE" in alone.stdout
    # When both targets run (the slow one waits 20 s on a tarpit) on a terminal
    err_master, err_slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=err_slave, stdin=subprocess.DEVNULL)
    os.close(err_slave)
    try:
        # and Ctrl-C arrives once the progress line says the quick target is done
        seen = b""
        deadline = time.monotonic() + 30
        while b"1 done" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([err_master], [], [], 0.1)
            if ready:
                seen += os.read(err_master, 4096)
        assert b"1 done" in seen, seen
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        stopped = time.monotonic() - interrupted
        err = seen + _read_all(err_master, proc, 1)
    finally:
        proc.kill()
        os.close(err_master)
    # Then it stopped at once (not at the 20 s deadline), exit 130, with the targets that finished
    assert proc.returncode == 130, out
    assert stopped < max(3.0, 10 * reference), (stopped, reference)
    text = out.decode()
    assert text.startswith("CRITICAL: 1 of 2 RMX critical (rmx-quick: REGISTRAR_UNREACHABLE), 1 could not be "
                           "checked (rmx-slow: could not run mtls: interrupted (Ctrl-C) before it finished)"), text
    assert "rmxdiag: interrupted: 1 of 2 target(s) finished" in err.decode(errors="replace")
