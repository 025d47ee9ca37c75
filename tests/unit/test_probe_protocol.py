"""The one Probe protocol: every registered probe satisfies it, stays light until it runs, and the
engine is the one place where a probe's exception becomes a failed outcome."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import probes
from daemon.engine import run_probe, run_target
from probes.model import ErrorKind, InputError, ProbeOutcome, ProbeStatus
from probes.target import (
    AlarmSources,
    CaptureSources,
    CertificateSource,
    ProbeContext,
    Registrar,
    Settings,
    Target,
)

ROOT = Path(__file__).resolve().parents[2]
# One target per probe, configuring only what that probe needs.
ONLY = {
    "certificate": Target("t", certificate=CertificateSource("pem", path=Path("x.pem"))),
    "mtls": Target("t", registrars=(Registrar("fe.example"),)),
    "alarms": Target("t", alarms=AlarmSources(report_files=(Path("r.txt"),))),
    "capture": Target("t", capture=CaptureSources(files=(Path("c.pcap"),))),
}


def _ctx() -> ProbeContext:
    return ProbeContext(datetime.now(UTC), time.monotonic() + 5)


@pytest.mark.parametrize("name", list(probes.PROBES))
def test_each_registered_probe_satisfies_the_protocol(name: str) -> None:
    # Given the registry entry, When its probe is loaded
    probe = probes.get(name)
    # Then it is a Probe under its registry name, and applies exactly to the target configuring it
    assert isinstance(probe, probes.Probe)
    assert probe.name == name
    assert [n for n, target in ONLY.items() if probe.applies_to(target)] == [name]
    assert not probe.applies_to(Target("empty"))


def test_the_registry_order_is_the_report_order() -> None:
    target = Target("t", certificate=ONLY["certificate"].certificate, registrars=ONLY["mtls"].registrars,
                    alarms=ONLY["alarms"].alarms, capture=ONLY["capture"].capture)
    assert probes.applicable(target) == ["certificate", "mtls", "alarms", "capture"]
    with pytest.raises(KeyError):
        probes.get("nope")


def test_asking_which_probes_apply_imports_no_heavy_library() -> None:
    # Given a fresh interpreter, When the registry is asked which probes apply to a full target
    code = ("import sys, probes; from pathlib import Path; from probes.target import *; "
            "t = Target('t', certificate=CertificateSource('pem', path=Path('x')), registrars=(Registrar('h'),), "
            "capture=CaptureSources(files=(Path('c'),))); assert probes.applicable(t); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'pyshark', 'dns', "
            "'requests', 'yaml') or m.endswith('.probe')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                          timeout=60)
    # Then neither the probe modules nor their libraries were imported
    assert done.stdout.strip() == "[]"


def test_a_probe_that_raises_is_a_probe_bug_and_bad_input_keeps_its_kind() -> None:
    # Given probes raising a bug, bad input with a kind, and one returning normally
    def bug(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        raise ZeroDivisionError

    def bad(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        raise InputError("/etc/rmx.pem: no such file", ErrorKind.FILE_UNREADABLE)

    def fine(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        return ProbeOutcome("capture", ProbeStatus.OK, 0.0)

    # When the engine runs them
    report = run_target(Target("t"), Settings(), runners={"certificate": bug, "mtls": bad, "capture": fine})
    by = {o.probe: o for o in report.probes}
    # Then each becomes one failed outcome of the right kind, in the engine, without a traceback
    assert by["certificate"].error is not None and by["certificate"].error.kind is ErrorKind.PROBE_BUG
    assert by["certificate"].error.detail == "internal error in the certificate probe (ZeroDivisionError)"
    assert by["mtls"].error is not None and by["mtls"].error.kind is ErrorKind.FILE_UNREADABLE
    assert by["mtls"].error.detail == "/etc/rmx.pem: no such file"
    assert by["capture"].status is ProbeStatus.OK


def test_run_probe_skips_a_probe_without_work_and_wraps_bad_input(tmp_path: Path) -> None:
    assert run_probe("mtls", Target("t"), Settings(), _ctx()).status is ProbeStatus.SKIPPED
    gone = Target("t", certificate=CertificateSource("pem", path=tmp_path / "gone.pem"))
    outcome = run_probe("certificate", gone, Settings(), _ctx())
    assert outcome.error is not None and outcome.error.kind is ErrorKind.FILE_UNREADABLE


def test_no_probe_builds_its_own_probe_bug_outcome() -> None:
    # Given the probe sources, Then none wraps its own bugs: the engine's envelope does it for all
    makers = [str(p.relative_to(ROOT)) for p in (ROOT / "probes").rglob("*.py") if "PROBE_BUG" in p.read_text()]
    assert makers == ["probes/model.py"]  # where the kind is defined
    assert "ErrorKind.PROBE_BUG" in (ROOT / "daemon" / "engine.py").read_text()
