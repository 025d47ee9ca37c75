"""Mistakes and long waits, on the CLI's real output: configuration errors in plain words, one rule
for secret files on the command line and in the configuration, every error as one JSON document
with --format json, and a live capture that saw nothing (with its progress on a terminal only).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.peers import free_port, need_capture

from tests.conftest import LabPKI


def rmxdiag(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with pipes; ``env`` entries set to '' are removed."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd, env={k: v for k, v in merged.items() if v})


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refusal (exit 3, nothing else on stderr)."""
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rmxdiag: error: ") and "Traceback" not in done.stderr, lines
    return lines[0]


def test_yaml_indentation_mistake_names_the_line_in_plain_words(tmp_path: Path) -> None:
    # Given a target whose certificate keys do not line up
    config = tmp_path / "rmxdiag.yaml"
    config.write_text("targets:\n  - name: rmx\n    certificate:\n      pfx: rmx.pfx\n     password_file: p\n")
    # When checked, Then the line and "wrong indentation" in words, with the parser's words after them
    line = one_line(rmxdiag("check-config", "-c", config))
    assert line.startswith(f"rmxdiag: error: {config}:5: invalid YAML: wrong indentation: this line does not line "
                           "up with the lines above it"), line


def test_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    config = tmp_path / "rmxdiag.yaml"
    config.write_text("targets:\n  - name: rmx\n    registrars: [{host: fe.example.com, snii: x}]\n")
    line = one_line(rmxdiag("run", "-c", config))
    assert line == f"rmxdiag: error: {config}:3: targets[0].registrars[0].snii: unknown key; did you mean sni?"


def test_missing_relative_file_is_shown_where_it_was_looked_for(tmp_path: Path) -> None:
    # Given a config in conf/ naming a relative CA bundle, read from another working directory
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "rmxdiag.yaml"
    config.write_text("targets:\n  - name: rmx\n    registrars: [{host: fe.example.com}]\n"
                      "    ca_bundle: certs/fe.pem\n")
    line = one_line(rmxdiag("check-config", "-c", "conf/rmxdiag.yaml", cwd=tmp_path))
    # Then the path is the one resolved next to the config file, and the message says why
    assert line == (f"rmxdiag: error: conf/rmxdiag.yaml:4: targets[0].ca_bundle: {tmp_path}/conf/certs/fe.pem: no such "
                    "file ('certs/fe.pem' is relative to the directory of rmxdiag.yaml)")


def test_run_without_a_configuration_names_every_way_to_give_one(tmp_path: Path) -> None:
    done = rmxdiag("run", env={"RMXDIAG_CONFIG": ""}, cwd=tmp_path)
    if Path("/etc/rmxdiag/rmxdiag.yaml").exists():
        pytest.skip("this host has a real /etc/rmxdiag/rmxdiag.yaml")
    line = one_line(done)
    assert "-c FILE" in line and "$RMXDIAG_CONFIG" in line and "config/rmxdiag.example.yaml" in line


def test_the_cli_and_the_configuration_refuse_the_same_password_file(tmp_path: Path, lab_pki: LabPKI) -> None:
    # Given a PFX and its password in a file readable by everyone (the umask default)
    pfx = tmp_path / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(b"Pass-1"))
    pfx.chmod(0o600)
    password = tmp_path / "rmx.pass"
    password.write_text("Pass-1\n")
    password.chmod(0o644)
    config = tmp_path / "rmxdiag.yaml"
    config.write_text("targets:\n  - name: rmx\n    certificate: {pfx: rmx.pfx, password_file: rmx.pass}\n")
    why = f"{password}: readable by group or others (mode 0644); run chmod 600 on it"
    # When the command line and the configuration use it, Then both refuse it with the same words
    for argv in (["cert", pfx, "--password-file", password], ["probe", "127.0.0.1:1", "--pfx", pfx,
                                                              "--password-file", password],
                 ["cert", "extract", pfx, "--password-file", password]):
        assert one_line(rmxdiag(*argv)) == f"rmxdiag: error: {why}", argv
    assert one_line(rmxdiag("check-config", "-c", config)).endswith(f"targets[0].certificate.password_file: {why}")
    # And once private, both accept it
    password.chmod(0o600)
    assert rmxdiag("cert", pfx, "--password-file", password).returncode != 3
    assert rmxdiag("check-config", "-c", config).returncode == 0


def test_every_error_is_one_json_document_with_format_json(tmp_path: Path) -> None:
    # Given errors of every kind: a missing file, a usage error, a bad configuration, no configuration
    config = tmp_path / "bad.yaml"
    config.write_text("targets: [\n")
    cases = {
        "file_unreadable": ["cert", tmp_path / "missing.pem", "--format", "json"],
        "usage": ["probe", "--format", "json", "--no-such-option"],
        "bad_input": ["run", "-c", config, "--format=json"],
    }
    for kind, argv in cases.items():
        done = rmxdiag(*argv)
        # Then stdout is one JSON document with schema 1 and the error, besides the stderr line
        assert done.returncode == 3, (argv, done.stdout, done.stderr)
        doc = json.loads(done.stdout)
        assert doc == {"schema": 1, "error": {"kind": kind, "detail": doc["error"]["detail"]}}, doc
        assert doc["error"]["detail"] and doc["error"]["detail"] in done.stderr
    # And text mode keeps stdout empty on an error
    assert rmxdiag("cert", tmp_path / "missing.pem").stdout == ""


def _read_until_exit(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def test_live_capture_that_saw_nothing_is_exit_3_with_progress_only_on_a_terminal() -> None:
    need_capture()
    port = free_port()  # nothing talks on it
    argv = [sys.executable, "-m", "daemon.cli", "pcap", "--interface", "lo", "--port", str(port), "--duration", "3"]
    # When the bounded live capture runs with stderr on a terminal
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    try:
        err = _read_until_exit(master, proc, 60)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        os.close(master)
    # Then the terminal saw the seconds left, and the verdict is "nothing to judge" (exit 3), not OK
    assert proc.returncode == 3, out
    assert b"rmxdiag: capturing on lo port " in err and b"s left" in err
    first = out.decode().splitlines()[0]
    assert first.startswith(f"UNKNOWN: lo: nothing to judge (capture: no connection on port {port} during the live "
                            "capture on lo (3 s)"), first
    # And on a pipe the same run prints no progress at all
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 3 and piped.stderr == ""
