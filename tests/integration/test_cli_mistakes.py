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

from tests.conftest import LabPKI
from tests.support.peers import free_port, need_capture


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
    # And text mode prints the one UNKNOWN status line (a check plugin's output), stderr the error line
    text = rmxdiag("cert", tmp_path / "missing.pem")
    assert text.stdout == f"UNKNOWN: {tmp_path / 'missing.pem'}: certificate file does not exist\n"
    assert text.stderr == f"rmxdiag: error: {tmp_path / 'missing.pem'}: certificate file does not exist\n"


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
    # And on a pipe the same run prints no progress at all: stderr holds only the status (could not judge)
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 3 and "\r" not in piped.stderr and "\033" not in piped.stderr
    assert piped.stderr == "rmxdiag: " + piped.stdout.splitlines()[0].split(" | ")[0] + "\n"


def test_usage_error_is_one_line_and_an_unknown_status(tmp_path: Path) -> None:
    """Given a usage mistake (a port 0, an unknown option after a missing file argument)
    When rmxdiag runs as a check plugin
    Then stderr is one line ending with the --help pointer, stdout one UNKNOWN line, exit 3."""
    for argv, said in ((["pcap", "x.pcap", "--port", "0"], "argument --port: 0 is not a TCP port"),
                       (["cert", "--bogus"], "unrecognized arguments: --bogus")):
        done = rmxdiag(*argv, cwd=tmp_path)
        prog = f"rmxdiag {argv[0]}"
        assert done.returncode == 3
        assert done.stderr == f"{prog}: error: {said} (try '{prog} --help')\n"
        assert done.stdout == f"UNKNOWN: {prog}: {said}\n"


def test_could_not_judge_says_so_on_stderr_too(tmp_path: Path) -> None:
    """Given an alarms XML API address where nothing listens (the run cannot happen)
    When rmxdiag alarms runs, in text and in JSON
    Then stdout has the report (UNKNOWN first), and stderr the same status in one line."""
    user, password = tmp_path / "api.user", tmp_path / "api.pass"
    for path, value in ((user, "admin\n"), (password, "not-a-real-password\n")):
        path.write_text(value)
        path.chmod(0o600)
    port = free_port()
    for fmt in ("text", "json"):
        done = rmxdiag("alarms", "--xml-api", f"http://127.0.0.1:{port}/", "--user-file", user,
                       "--password-file", password, "--timeout", "3", "--format", fmt)
        assert done.returncode == 3, done
        (line,) = done.stderr.splitlines()
        assert line.startswith("rmxdiag: UNKNOWN: rmx: could not run alarms: ") and "|" not in line
        if fmt == "text":
            assert done.stdout.splitlines()[0].startswith(line.removeprefix("rmxdiag: ") + " | ")
        else:
            assert json.loads(done.stdout)["targets"][0]["status"] == "unknown"


def test_a_pipe_or_newline_in_a_file_name_stays_in_the_status_text(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given certificate files named with '|' and with a newline followed by a fake verdict
    When rmxdiag cert judges them
    Then the first line holds exactly one '|' (before the perfdata) and no second status line appears."""
    for name in ("a|b.pem", "nl\nOK: fake.pem"):
        path = tmp_path / name
        path.write_bytes(lab_pki.rmx.cert_pem)
        done = rmxdiag("cert", path)
        first, *rest = done.stdout.splitlines()
        assert done.returncode == 0, done
        assert first.count("|") == 1 and first.startswith("OK: ")
        assert "¦" in first or "\\n" in first
        assert not any(line.startswith("OK: fake.pem") for line in rest)


def test_ctrl_c_while_the_command_is_imported_is_exit_130_without_traceback(tmp_path: Path) -> None:
    """Given a real SIGINT delivered while the chosen subcommand's module is being imported
    When the CLI handles it
    Then one 'rmxdiag: interrupted' line, exit 130, no traceback."""
    script = ("import os, signal, sys\n"
              "from daemon import cli\n"
              "real = cli.importlib.import_module\n"
              "def interrupted(name):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    return real(name)\n"
              "cli.importlib.import_module = interrupted\n"
              "sys.exit(cli.main(['cert', 'missing.pem']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert (done.returncode, done.stderr) == (130, "rmxdiag: interrupted\n"), done


def test_probe_refuses_a_malformed_registrar_or_sni(tmp_path: Path) -> None:
    """Given a HOST:PORT with a third part, a host with a space, and an SNI that is markup
    When rmxdiag probe reads its arguments
    Then each is one line naming the value, exit 3, before any lookup or connection."""
    for argv, said in (
            (["127.0.0.1:5061:extra"], "'127.0.0.1:5061:extra' is not HOST, HOST:PORT, an IPv6 address or [IPv6]:PORT"),
            (["a b"], "'a b' is not a host name or address"),
            (["127.0.0.1", "--sni", "<script>x</script>"], "--sni: '<script>x</script>' is not a DNS name")):
        done = rmxdiag("probe", *argv, "--timeout", "1", cwd=tmp_path)
        assert done.returncode == 3, done
        (line,) = done.stderr.splitlines()
        assert line.startswith("rmxdiag: error: ") and said in line


def test_html_output_of_an_input_error_is_a_page_saying_why(tmp_path: Path) -> None:
    """Given a missing certificate whose name holds markup, and --format html (as '> report.html' does)
    When rmxdiag cert runs
    Then stdout is one self-contained page with the escaped UNKNOWN line (not an empty file), exit 3."""
    missing = tmp_path / "<script>x</script>.pem"
    done = rmxdiag("cert", missing, "--format", "html")
    assert done.returncode == 3 and done.stderr.count("\n") == 1
    assert done.stdout.startswith("<!DOCTYPE html>") and "<script" not in done.stdout
    assert "UNKNOWN: " in done.stdout and "&lt;script&gt;x&lt;/script&gt;.pem: certificate file does not exist" \
        in done.stdout
