"""`rmxdiag check-config` and `rmxdiag run` as a user runs them: real subprocesses, real files.

The run tests use targets whose probes need no peer (a certificate file judged by the real
certificate probe, a saved RMX alarm report); the Kamailio end-to-end run is in
tests/integration/test_run_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.lab import pki
from tests.support.config import FIXTURES, materialise_example, materialise_fixture_files, touch

ALARM = ("Active Alarms\n\nID\tTime\tGMT Time\tCategory\tLevel\tDescription\n"
         "1\t26/11/2026 10:00:00\t26/11/2026 09:00:00\tGeneral\tMajor\tSIP TLS: Registration handshake failure\n")


def rmxdiag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child process (no TTY, so no colour and no progress line)."""
    base = {k: v for k, v in os.environ.items() if k not in ("RMXDIAG_CONFIG", "CREDENTIALS_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**base, **(env or {})}, check=False)


@pytest.fixture
def factory_target(tmp_path: Path) -> Path:
    """Given a config whose RMX still holds its factory self-signed certificate and raises an alarm."""
    paths = pki.factory_self_signed("rmx.lab.example").write(tmp_path, "rmx")
    (tmp_path / "alerts.txt").write_text(ALARM)
    config = tmp_path / "rmxdiag.yaml"
    config.write_text(f"""targets:
  - name: rmx-factory
    fqdn: rmx.lab.example
    firmware: "7.x"
    certificate: {{cert: {paths['cert'].name}, key: {paths['key'].name}}}
    alarms: {{report_files: [alerts.txt]}}
  - name: rmx-alarm-only
    alarms: {{report_files: [alerts.txt]}}
""")
    return config


def _real_secrets(directory: Path, pfx_password: bytes = b"rmx-pass") -> None:
    """Replace the example's placeholder PFX and HTTPS files by real ones (check-config opens them)."""
    from daemon.lab import pki

    rmx = pki.issue(pki.name("rmx-hq.example.com"), pki.root_ca())
    touch(directory / "certs/rmx-hq.pfx", secret=True, content=rmx.pfx(b"rmx-pass"))
    touch(directory / "secrets/rmx-hq.pfx.pass", secret=True, content=pfx_password + b"\n")
    web = pki.issue(pki.name("rmxdiag.example.com"), None)
    touch(directory / "certs/rmxdiag-web.pem", content=web.cert_pem)
    touch(directory / "secrets/rmxdiag-web.key", secret=True, content=web.key_pem)


def test_check_config_shows_what_would_be_probed(tmp_path: Path) -> None:
    # Given the documented example with its files (real PFX and HTTPS key pair)
    config = materialise_example(tmp_path)
    _real_secrets(tmp_path)
    # When checked
    done = rmxdiag("check-config", "-c", str(config))
    # Then exit 0 and each target's probes and sources are listed
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: {config}: valid, 2 target(s)")
    assert "target rmx-hq: firmware 8.x" in done.stdout and "probes: certificate, mtls, alarms, capture" in done.stdout
    assert "mtls: pool01.example.com:5061, SNI pool01.example.com, TLS 1.0-1.2, then SIP OPTIONS" in done.stdout
    assert "target rmx-branch: firmware 7.x" in done.stdout and "[dry run]" in done.stdout


def test_check_config_refuses_what_serve_would_refuse(tmp_path: Path) -> None:
    # Given the example whose PFX password file holds the wrong password
    config = materialise_example(tmp_path)
    _real_secrets(tmp_path, pfx_password=b"wrong-pass")
    # When checked
    done = rmxdiag("check-config", "-c", str(config))
    # Then exit 3 with one line naming the PFX, as `rmxdiag serve` would refuse to start
    assert done.returncode == 3 and done.stdout == "UNKNOWN: " + done.stderr.removeprefix("rmxdiag: error: ")
    assert done.stderr.startswith(f"rmxdiag: error: {tmp_path / 'certs/rmx-hq.pfx'}: PFX of target rmx-hq cannot be "
                                  "decrypted")
    assert done.stderr.count("\n") == 1 and "wrong-pass" not in done.stderr


def test_check_config_invalid_is_one_line_and_exit_3(tmp_path: Path) -> None:
    # Given a config with an inline password
    materialise_fixture_files(tmp_path)
    config = tmp_path / "rmxdiag.yaml"
    shutil.copyfile(FIXTURES / "invalid" / "inline_password.yaml", config)
    # When checked
    done = rmxdiag("check-config", "-c", str(config))
    # Then one line naming file:line and the key, exit 3, and the value never shown
    assert done.returncode == 3 and done.stdout == "UNKNOWN: " + done.stderr.removeprefix("rmxdiag: error: ")
    assert done.stderr == (f"rmxdiag: error: {config}:7: targets[0].certificate.password: inline secrets are "
                           "refused: put the value in a file readable only by rmxdiag and give its path as "
                           "password_file (or credential: NAME)\n")
    assert "hunter2" not in done.stderr


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    # Given $RMXDIAG_CONFIG pointing at a missing file, When checked, Then that path is named
    done = rmxdiag("check-config", env={"RMXDIAG_CONFIG": str(tmp_path / "none.yaml")})
    assert done.returncode == 3 and done.stderr == f"rmxdiag: error: {tmp_path / 'none.yaml'}: no such file\n"


def test_run_with_a_bad_config_is_one_line_and_exit_3(tmp_path: Path) -> None:
    # Given a config with an unknown key, When run, Then file:line: key: what, exit 3, stdout the UNKNOWN line
    config = tmp_path / "c.yaml"
    config.write_text("targets:\n  - name: rmx\n    registrar: [{host: fe}]\n")
    done = rmxdiag("run", "-c", str(config))
    expected = f"rmxdiag: error: {config}:3: targets[0].registrar: unknown key; did you mean registrars?\n"
    assert (done.returncode, done.stdout, done.stderr) == (3, "UNKNOWN: " + expected.removeprefix("rmxdiag: error: "),
                                                           expected)


def test_run_unknown_target_is_exit_3(factory_target: Path) -> None:
    # When a target that is not configured is asked for, Then exit 3 and the known names are listed
    done = rmxdiag("run", "-c", str(factory_target), "--target", "rmx-nope")
    assert done.returncode == 3 and "rmx-nope" in done.stderr and "rmx-factory, rmx-alarm-only" in done.stderr


def test_run_text_verdicts_first_then_numbered_fixes(factory_target: Path) -> None:
    # When the factory-certificate target and the alarm-only target are run
    done = rmxdiag("run", "-c", str(factory_target))
    lines = done.stdout.splitlines()
    # Then the overall verdict, then one line per target, critical exit, and the 7.x menu in the fix steps
    assert done.returncode == 2, done.stderr
    assert lines[0].startswith("CRITICAL: 2 of 2 RMX critical (rmx-factory: CERT_SELF_SIGNED; rmx-alarm-only: "
                               "RMX_ALARM_REGISTRATION) | 'rmx-factory:certificate_seconds'=")
    assert lines[1].startswith("  CRITICAL: rmx-factory: The RMX uses a self-signed certificate [CERT_SELF_SIGNED]")
    assert lines[2].startswith("  CRITICAL: rmx-alarm-only:") and "[RMX_ALARM_REGISTRATION]" in lines[2]
    assert "SIP Servers tab" in done.stdout and "     1. Create a request" in done.stdout
    assert "\x1b[" not in done.stdout and done.stderr == ""


def test_run_json_is_the_report_document(factory_target: Path) -> None:
    # When one target is run as JSON
    done = rmxdiag("run", "-c", str(factory_target), "--target", "rmx-factory", "--format", "json")
    doc = json.loads(done.stdout)
    # Then the report document with the alarm folded into the self-signed root cause
    assert done.returncode == 2
    (target,) = doc["targets"]
    assert doc["schema"] == 1 and target["name"] == "rmx-factory" and target["status"] == "critical"
    assert [p["probe"] for p in target["probes"]] == ["certificate", "alarms"]
    hint = target["hints"][0]
    assert hint["code"] == "CERT_SELF_SIGNED"
    assert any(line.startswith("alarms: ") for line in hint["evidence"])
    assert {"code", "severity", "title", "evidence", "remediation"} <= set(hint)
