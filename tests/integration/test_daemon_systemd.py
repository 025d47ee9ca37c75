"""The systemd units: `systemd-analyze verify` prints nothing and the exposure score stays <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.peers import need

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def _stage(tmp_path: Path, with_capture: bool) -> Path:
    # verify checks that ExecStart= exists: point it at the rmxdiag this test runs with.
    rmxdiag = shutil.which("rmxdiag") or str(Path(sys.executable).parent / "rmxdiag")
    for unit in ("rmxdiag.service", "rmxdiag-run@.service", "rmxdiag-run@.timer"):
        text = (UNITS / unit).read_text().replace("/usr/bin/rmxdiag", rmxdiag)
        (tmp_path / unit).write_text(text)
    if with_capture:
        (tmp_path / "rmxdiag.service.d").mkdir()
        shutil.copy(UNITS / "rmxdiag.service.d" / "capture.conf", tmp_path / "rmxdiag.service.d")
    return tmp_path


def _exposure(tool: str, cwd: Path, unit: str) -> float:
    out = subprocess.run([tool, "security", "--offline=true", f"./{unit}"], cwd=cwd, capture_output=True,
                         text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert found, out.stdout + out.stderr
    return float(found.group(1))


@pytest.mark.parametrize("with_capture", [False, True], ids=["plain", "capture-drop-in"])
def test_units_verify_silently_and_score_at_most_2(tmp_path: Path, with_capture: bool) -> None:
    tool = need("systemd-analyze")
    # Given the units (and optionally the CAP_NET_RAW drop-in) as shipped
    staged = _stage(tmp_path, with_capture)
    # When systemd-analyze verifies them
    verify = subprocess.run([tool, "verify", "./rmxdiag.service", "./rmxdiag-run@probe.service",
                             "./rmxdiag-run@.timer"], cwd=staged, capture_output=True, text=True, timeout=60,
                            check=False)
    # Then it prints nothing at all (it exits 0 even with warnings)
    assert verify.returncode == 0 and verify.stdout == "" and verify.stderr == "", verify
    # And both units score <= 2.0
    assert _exposure(tool, staged, "rmxdiag.service") <= 2.0
    assert _exposure(tool, staged, "rmxdiag-run@probe.service") <= 2.0
    # And the drop-in really grants CAP_NET_RAW (the pcap probe's message names this path)
    if with_capture:
        assert "AmbientCapabilities=CAP_NET_RAW" in (UNITS / "rmxdiag.service.d" / "capture.conf").read_text()


def test_service_contract_directives() -> None:
    # Given the main unit
    text = (UNITS / "rmxdiag.service").read_text()
    # Then the directives other parts rely on are present
    for directive in ("Type=notify", "WatchdogSec=", "DynamicUser=yes", "LoadCredential=", "StateDirectory=rmxdiag",
                      "ExecReload=/bin/kill -HUP $MAINPID", "RestartPreventExitStatus=78"):
        assert directive in text, directive


def _syscalls(tool: str, group: str) -> set[str]:
    out = subprocess.run([tool, "syscall-filter", group], capture_output=True, text=True, timeout=60, check=True)
    names: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        word = line.strip()
        if word.startswith("@"):
            names |= _syscalls(tool, word)
        elif word and not word.startswith("#"):
            names.add(word)
    return names


def test_the_unit_lets_the_daemon_reap_and_end_its_children() -> None:
    """Given the unit's SystemCallFilter lines, When resolved with systemd-analyze, Then prctl (the child
    subreaper), pidfd_open, kill and wait4 are allowed: the calls probes.children relies on."""
    tool = need("systemd-analyze")
    allowed: set[str] = set()
    denied: set[str] = set()
    for line in (UNITS / "rmxdiag.service").read_text().splitlines():
        if line.startswith("SystemCallFilter="):
            value = line.split("=", 1)[1]
            deny = value.startswith("~")
            for word in value.lstrip("~").split():
                names = _syscalls(tool, word) if word.startswith("@") else {word}
                (denied if deny else allowed).update(names)
    for call in ("prctl", "pidfd_open", "kill", "wait4", "waitid"):
        assert call in allowed and call not in denied, call


def test_the_example_action_timeouts_fit_under_the_units_stop_timeout(tmp_path: Path) -> None:
    """Given the documented example config and the unit, Then every example action's timeout is shorter than
    TimeoutStopSec (a copied example never outlives a stop; SIGTERM ends running actions at once anyway)."""
    from daemon.config.load import load_config
    from tests.support.config import materialise_example

    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", (UNITS / "rmxdiag.service").read_text(), re.M).group(1))  # type: ignore[union-attr]
    config = load_config(materialise_example(tmp_path))
    timeouts = {action.code: action.timeout for action in config.actions}
    print(f"TimeoutStopSec={stop}; example action timeouts {timeouts}")
    assert timeouts and all(t < stop for t in timeouts.values()), timeouts
