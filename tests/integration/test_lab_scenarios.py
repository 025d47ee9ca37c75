"""Every lab scenario, run through the real CLI, names its expected root cause (and healthy names none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.diagnosis.catalogue import CATALOGUE
from daemon.lab.scenarios import DEFAULT_SCENARIO, SCENARIOS

RMXDIAG = [sys.executable, "-m", "daemon.cli"]


def _lab(*args: str, cwd: Path, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.run([*RMXDIAG, "lab", *args], capture_output=True, text=True, timeout=90, cwd=cwd,
                          env=env, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_names_its_root_cause(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    # When the lab runs the scenario with JSON output and keeps its files
    start = time.monotonic()
    done = _lab("--scenario", name, "--format", "json", "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    elapsed = time.monotonic() - start
    # Then stdout is one report document, the banner went to stderr, and it was quick
    doc = json.loads(done.stdout)
    assert "rmxdiag LAB" in done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < 60
    (target,) = doc["targets"]
    codes = [h["code"] for h in target["hints"]]
    if scenario.expect is None:
        # Healthy: every probe ran, nothing to fix, exit 0
        assert done.returncode == 0, done.stderr
        assert target["status"] == "ok" and codes == []
        assert all(p["status"] == "ok" for p in target["probes"])
        # And the mtls probe (a Python ssl client) read the Front End's CA list from its CertificateRequest
        (mtls,) = [p for p in target["probes"] if p["probe"] == "mtls"]
        assert mtls["result"]["registrars"][0]["ca_names"] == ["CN=Contoso Lab Root CA,O=rmxdiag lab",
                                                              "CN=Contoso Lab Issuing CA,O=rmxdiag lab"]
    else:
        # Faulty: the expected root cause is among the hints; the exit code is its severity's
        assert scenario.expect in codes, f"{name}: {codes}"
        severity = CATALOGUE[scenario.expect].severity
        assert done.returncode == severity.rank and target["status"] == str(severity)
        assert f"lab: expected root cause {scenario.expect} found" in done.stderr
    # And the simulated RMX files are where the banner says
    assert (tmp_path / "w" / "rmx-active-alarms.txt").read_text().startswith("ID\tTime\tGMT Time\tCategory")


def test_default_text_run_prints_a_lab_banner_then_the_diagnosis(tmp_path: Path) -> None:
    # When the lab runs with no option (what `make demo` does), with its own TMPDIR
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = _lab(cwd=tmp_path, tmpdir=scratch)
    # Then the verdict comes first (as for every subcommand), then the banner saying it is a lab,
    # which does not name the temporary directory it removes
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CRITICAL: lab-untrusted-ca: ") and lines[1] == "=" * 78
    assert lines[2].startswith("rmxdiag LAB - scenario 'untrusted-ca'")
    assert "no real RMX or Lync" in done.stdout
    banner = "\n".join(lines[1:lines.index("=" * 78, 2) + 1])
    assert "simulated RMX files : a temporary directory, removed when the lab ends (keep them with --workdir DIR)" \
        in banner and str(scratch) not in banner
    assert DEFAULT_SCENARIO == "untrusted-ca"
    assert done.returncode == 2
    assert "Fix:" in done.stdout
    # And it ends with what to do next: keep the files, the other subcommands, the way to a real RMX
    assert ("Next:\n  Keep the lab's files in ./lab:\n    rmxdiag lab --scenario untrusted-ca --workdir lab"
            in done.stdout)
    assert done.stdout.rstrip().endswith("and which commands to run on them.")
    # And its temporary directory (keys included) was removed
    assert list(scratch.iterdir()) == []


def test_list_shows_every_scenario_with_its_expected_code(tmp_path: Path) -> None:
    # When the scenarios are listed
    done = _lab("--list", cwd=tmp_path)
    # Then each has one line with its expected code, and the default is marked
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == len(SCENARIOS)
    for line, scenario in zip(lines, SCENARIOS.values(), strict=True):
        assert line.split()[:2] == [scenario.name, scenario.expect or "OK"]
    assert sum("(default)" in line for line in lines) == 1


def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    # When a scenario name is mistyped
    done = _lab("--scenario", "untrusted", cwd=tmp_path)
    # Then exit 3, one line, no traceback
    assert done.returncode == 3
    assert "untrusted" in done.stderr and "Traceback" not in done.stderr


def test_a_file_as_workdir_is_one_clear_line(tmp_path: Path) -> None:
    # Given --workdir naming an existing regular file
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    # When the lab runs
    done = _lab("--workdir", str(blocker), cwd=tmp_path)
    # Then exit 3 with one line naming the path, no traceback
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"rmxdiag: error: {blocker}: cannot be used as the lab directory (File exists)"]


def test_a_directory_with_the_users_files_is_refused_untouched(tmp_path: Path) -> None:
    """Given --workdir naming a directory holding the user's own rmx-cert.pem / rmx-key.pem
    When the lab runs
    Then it exits 3 with one line naming the directory, and both files keep their content."""
    mine = tmp_path / "collected"
    mine.mkdir()
    (mine / "rmx-cert.pem").write_text("precious cert\n")
    (mine / "rmx-key.pem").write_text("precious key\n")
    done = _lab("--scenario", "healthy", "--workdir", str(mine), cwd=tmp_path)
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"rmxdiag: error: {mine}: cannot be used as the lab directory (it is not empty")
    assert (mine / "rmx-cert.pem").read_text() == "precious cert\n"
    assert (mine / "rmx-key.pem").read_text() == "precious key\n"
    assert sorted(p.name for p in mine.iterdir()) == ["rmx-cert.pem", "rmx-key.pem"]


@pytest.mark.slow
def test_a_lab_directory_is_reused_without_writing_through_symlinks(tmp_path: Path) -> None:
    """Given a directory an earlier lab run wrote, where rmx-key.pem and the key log were then
    replaced by symlinks to someone's 0644 files
    When the lab runs there again
    Then the symlinks are replaced by new files (the key 0600), the linked files stay as they were."""
    work = tmp_path / "lab"
    first = _lab("--scenario", "healthy", "--workdir", str(work), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    victims = {}
    for name in ("rmx-key.pem", "rmx-tls-keys.log", "rmx-cert.pem"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("not yours\n")
        victim.chmod(0o644)
        (work / name).unlink(missing_ok=True)
        (work / name).symlink_to(victim)
        victims[name] = victim
    again = _lab("--scenario", "untrusted-ca", "--workdir", str(work), cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    for name, victim in victims.items():
        assert victim.read_text() == "not yours\n"
        assert not (work / name).is_symlink()
    assert b"PRIVATE KEY" in (work / "rmx-key.pem").read_bytes()
    assert (work / "rmx-key.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_lab_needs_no_system_program(tmp_path: Path) -> None:
    # Given a PATH with nothing but the venv (no tshark, no openssl)
    env_path = str(Path(sys.executable).parent)
    done = subprocess.run([*RMXDIAG, "lab", "--scenario", "untrusted-ca", "--format", "json"], capture_output=True,
                          text=True, timeout=90, cwd=tmp_path, env={"PATH": env_path, "NO_COLOR": "1",
                                                                     "TMPDIR": str(tmp_path)}, check=False)
    # Then the lab still runs and diagnoses; the capture is simply not part of the run
    doc = json.loads(done.stdout)
    probes_run = [p["probe"] for p in doc["targets"][0]["probes"]]
    assert "capture" not in probes_run and "mtls" in probes_run
    assert done.returncode == 2
    assert "CLIENT_CERT_UNKNOWN_CA" in [h["code"] for h in doc["targets"][0]["hints"]]
