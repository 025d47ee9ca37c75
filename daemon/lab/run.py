"""`rmxdiag lab`: the whole product against a simulated Front End, with no RMX and no Lync.

One run: generate the scenario's PKI and RMX alarm report, start the lab registrar on loopback,
let a simulated RMX try to register once (its bytes become the lab capture when tshark can read
it), then run the real engine on a target that points at all of this and print the diagnosis.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from daemon.engine import run_target
from daemon.lab.files import fresh, prepare
from daemon.lab.registrar import LabRegistrar
from daemon.lab.scenarios import DEFAULT_SCENARIO, POOL_FQDN, RMX_FQDN, SCENARIOS, Material, Scenario, write_material
from daemon.report import Report, TargetReport, now_utc
from probes.target import AlarmSources, CaptureSources, CertificateSource, Registrar, Settings, Target

log = logging.getLogger("rmxdiag.lab")

PROBE_DEADLINE = 8.0  # seconds per probe; the whole lab run stays well under a minute


@dataclass(frozen=True)
class LabRun:
    """What one lab run did: its scenario, where things are, and the engine's report."""

    scenario: Scenario
    workdir: Path
    registrar: str  # "127.0.0.1:port"
    report: TargetReport
    capture: Path | None

    @property
    def found_expected(self) -> bool:
        """True when the report names exactly what the scenario was built to show."""
        codes = {h.code for h in self.report.hints}
        if self.scenario.expect is None:
            return not any(h.severity.rank > 0 for h in self.report.hints)
        return self.scenario.expect in codes


def _closed_port() -> int:
    """A loopback port nothing listens on (bound then released), for the registrar-down scenario."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_target(scenario: Scenario, material: Material, port: int, capture: Path | None,
                 keylog: Path | None) -> Target:
    """The target an admin would configure for this RMX, pointing at the lab's files and registrar."""
    return Target(
        name=f"lab-{scenario.name}",
        fqdn=RMX_FQDN,
        firmware="8.x",
        certificate=CertificateSource("pem", path=material.rmx_cert, key=material.rmx_key, chain=material.rmx_chain),
        ca_bundle=material.ca_bundle,
        registrars=(Registrar(host="127.0.0.1", port=port, sni=POOL_FQDN, tls_min=scenario.rmx_tls[0],
                              tls_max=scenario.rmx_tls[1], sip_options=True),),
        alarms=AlarmSources(report_files=(material.alarm_report,)),
        # The lab capture shows the Front End on 5061 (see daemon.lab.capture).
        capture=CaptureSources(files=(capture,), port=5061, keylog=keylog) if capture else CaptureSources(),
        deadline=PROBE_DEADLINE,
    )


@contextlib.contextmanager
def frontend(scenario: Scenario, material: Material) -> Iterator[LabRegistrar | None]:
    """The simulated Front End of the scenario (None when the scenario has it down)."""
    if not scenario.registrar_up:
        yield None
        return
    registrar = LabRegistrar(material.fe_cert, material.fe_key, material.fe_trust, scenario.trusted_names,
                             tls_min=scenario.fe_tls[0], tls_max=scenario.fe_tls[1], reject="reset")
    registrar.start()
    try:
        yield registrar
    finally:
        registrar.stop()


@dataclass(frozen=True)
class LabSetup:
    """A scenario brought up: its files, its running Front End (or a dead port) and its target."""

    scenario: Scenario
    workdir: Path
    port: int
    target: Target
    capture: Path | None


@contextlib.contextmanager
def scenario_setup(name: str, workdir: Path) -> Iterator[LabSetup]:
    """Write the scenario's files, start its Front End and record the capture; stop it all on exit."""
    scenario = SCENARIOS[name]
    material = write_material(scenario, workdir)
    with frontend(scenario, material) as fe:
        port = fe.address[1] if fe else _closed_port()
        capture, keylog = None, None
        for stale in ("rmx-frontend.pcap", "rmx-tls-keys.log"):
            fresh(workdir / stale)  # an earlier run's capture is not this scenario's
        if shutil.which("tshark"):
            from daemon.lab import capture as lab_capture

            if fe is not None:
                capture, keylog = lab_capture.record_registration(fe, material, scenario, workdir)
            else:
                capture = lab_capture.record_refused(port, workdir)
        yield LabSetup(scenario, workdir, port, build_target(scenario, material, port, capture, keylog),
                       capture)


def lab_settings(workdir: Path) -> Settings:
    """Settings of a lab run (state kept in the lab's own directory)."""
    return Settings(listen="127.0.0.1:0", interval=15.0, state_dir=workdir, deadline=PROBE_DEADLINE)


def run_scenario(name: str, workdir: Path) -> LabRun:
    """Run one scenario end to end in ``workdir`` and return what happened."""
    with scenario_setup(name, workdir) as setup:
        report = run_target(setup.target, lab_settings(workdir), on_demand=True)
    return LabRun(setup.scenario, workdir, f"127.0.0.1:{setup.port}", report, setup.capture)


@contextlib.contextmanager
def lab_workdir(requested: Path | None) -> Iterator[Path]:
    """``requested`` (new, empty or an earlier lab's; kept), or a temporary directory removed afterwards."""
    if requested is not None:
        prepare(requested)
        yield requested
        return
    with tempfile.TemporaryDirectory(prefix="rmxdiag-lab-") as tmp:
        yield Path(tmp)


def header(run: LabRun, kept: bool = True) -> str:
    """The banner that says plainly this is a lab, what it simulates and where its files are.

    ``kept``: the files stay in ``run.workdir`` (--workdir); otherwise they were in a temporary
    directory that is gone by the time anyone reads the banner, so it does not name it.
    """
    s = run.scenario
    where = (f"{run.workdir} (certificate, key, alarm report" + (", capture)" if run.capture else ")")
             if kept else "a temporary directory, removed when the lab ends (keep them with --workdir DIR)")
    lines = [
        "=" * 78,
        f"rmxdiag LAB - scenario '{s.name}': {s.summary}",
        "This is a simulation on 127.0.0.1: no real RMX or Lync/Skype for Business is involved.",
        f"  simulated Front End : {run.registrar} (pool {POOL_FQDN})"
        + ("" if s.registrar_up else " - deliberately down"),
        f"  simulated RMX files : {where}",
        f"  expected root cause : {s.expect or 'none (healthy)'}",
    ]
    lines.append("=" * 78)
    return "\n".join(lines) + "\n"


def footer(run: LabRun, kept: bool = True, width: int | None = None) -> str:
    """Whether the diagnosis matched the scenario, then what to do next: the other subcommands on
    the lab's files (named where they are), and the way to a real RMX. Commands are cut to
    ``width`` with shell continuations."""
    from daemon.textreport import shell_wrap

    verdict = "found" if run.found_expected else "NOT found (please report this as a bug)"
    lines = [f"lab: expected root cause {run.scenario.expect or '(none: healthy)'} {verdict}", "", "Next:"]
    d = str(run.workdir) if kept else "lab"
    steps: list[tuple[str, str]] = []
    if not kept:
        steps.append(("Keep the lab's files in ./lab:", f"rmxdiag lab --scenario {run.scenario.name} --workdir lab"))
    cert = f"rmxdiag cert {d}/rmx-cert.pem --key {d}/rmx-key.pem"
    cert += f" --chain {d}/rmx-chain.pem" if (run.workdir / "rmx-chain.pem").exists() else ""
    steps += [("Judge the RMX certificate:", f"{cert} --fe-trust {d}/frontend-trusted-roots.pem --fqdn {RMX_FQDN}"),
              ("Read the RMX alarms:", f"rmxdiag alarms {d}/rmx-active-alarms.txt")]
    if run.capture is not None:
        keylog = f" --keylog {d}/rmx-tls-keys.log" if (run.workdir / "rmx-tls-keys.log").exists() else ""
        steps.append(("Read the capture:", f"rmxdiag pcap {d}/{run.capture.name}{keylog}"))
    for what, command in steps:
        lines.append(f"  {what}")
        lines += shell_wrap(command, width)
    lines += ["  On a real RMX: the README section 'Your first real RMX' says what to collect",
              "  (its certificate, the Front End's trusted CAs, an alarms report, a capture)",
              "  and which commands to run on them."]
    return "\n".join(lines) + "\n"


def list_scenarios(out: TextIO) -> None:
    """``--list``: one line per scenario with its expected root cause."""
    width = max(len(n) for n in SCENARIOS)
    for s in SCENARIOS.values():
        default = " (default)" if s.name == DEFAULT_SCENARIO else ""
        out.write(f"{s.name:<{width}}  {s.expect or 'OK':<24}  {s.summary}{default}\n")


def as_report(run: LabRun) -> Report:
    """The one-target report document of the run."""
    return Report(now_utc(), (run.report,))

