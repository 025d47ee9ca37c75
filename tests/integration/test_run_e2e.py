"""End to end: `rmxdiag run` over a config with three RMX targets against a REAL Kamailio Front End.

One Kamailio trusts the lab CA and the RMX name ``rmx.lab.example`` (200 to OPTIONS; others get
403 + ms-diagnostics 1010). The three targets: healthy (with a stale alarm the probes contradict),
a certificate from an unrelated CA (with the RMX's "Registration handshake failure" alarm and a
dumpcap recording of that RMX's TLS 1.2 handshake with the Front End) and a well-issued
certificate whose name is not a trusted application.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.lab import pki
from probes.mtls import probe as mtls
from probes.target import Registrar
from tests.conftest import LabPKI
from tests.support.capture import recording
from tests.support.kamailio import Registrar as Fe
from tests.support.kamailio import kamailio_registrar

pytestmark = pytest.mark.peer

ALARMS = ("Active Alarms\n\nID\tTime\tGMT Time\tCategory\tLevel\tDescription\n"
          "1\t26/11/2026 10:00:00\t26/11/2026 09:00:00\tGeneral\tMajor\tSIP TLS: Registration handshake failure\n")


@dataclass
class Run:
    """One `rmxdiag run` of the lab config: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def lab_config(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Given a Kamailio FE and a config with the three targets (paths relative to the config)."""
    d = tmp_path_factory.mktemp("run-e2e")
    ca = lab_pki.ca_bundle(d)
    lab_pki.rmx.write(d / "healthy", "rmx")
    pki.issue(pki.name(lab_pki.fqdn, O="rmxdiag lab"), lab_pki.other_root,
              cdp=["http://127.0.0.1:9/lab.crl"]).write(d / "untrusted", "rmx")
    pki.issue(pki.name("rmx2.lab.example", O="rmxdiag lab"), lab_pki.issuing,
              cdp=["http://127.0.0.1:9/lab.crl"]).write(d / "notapp", "rmx")
    (d / "alarms.txt").write_text(ALARMS)
    with kamailio_registrar(d / "kam", lab_pki.fe, ca, trusted_cn=lab_pki.fqdn) as fe:
        _record_untrusted_handshake(d, fe)
        (d / "rmxdiag.yaml").write_text(_config(fe, lab_pki))
        yield d / "rmxdiag.yaml"


def _record_untrusted_handshake(d: Path, fe: Fe) -> None:
    """What a capture on the RMX's network would hold: its TLS 1.2 handshake refused by the FE."""
    spec = mtls.ClientSpec(cert=d / "untrusted/rmx.crt", key=d / "untrusted/rmx.key",
                           chain=d / "untrusted/rmx-chain.pem", ca_bundle=d / "fe-trust.pem", tls_max="1.2")
    with recording(fe.port, d / "untrusted.pcapng"):
        seen = mtls.probe([Registrar(host=fe.host, port=fe.port, sni="pool.lab.example", tls_max="1.2")], spec,
                          deadline=time.monotonic() + 5)
    assert seen.failure == ("tls", "alert_unknown_ca"), seen


def _config(fe: Fe, lab: LabPKI) -> str:
    targets = []
    for name, stem, fqdn, alarms in (("rmx-healthy", "healthy", lab.fqdn, True),
                                     ("rmx-untrusted-ca", "untrusted", lab.fqdn, True),
                                     ("rmx-not-trusted-app", "notapp", "rmx2.lab.example", False)):
        capture = stem == "untrusted"
        targets.append(f"""  - name: {name}
    fqdn: {fqdn}
    firmware: "8.x"
    certificate: {{cert: {stem}/rmx.crt, key: {stem}/rmx.key, chain: {stem}/rmx-chain.pem}}
    ca_bundle: fe-trust.pem
    registrars:
      - {{host: 127.0.0.1, port: {fe.port}, sni: {lab.pool}, tls_max: "{'1.2' if capture else '1.3'}"}}
""" + ("    alarms: {report_files: [alarms.txt]}\n" if alarms else "")
            + (f"    capture: {{files: [untrusted.pcapng], port: {fe.port}}}\n" if capture else ""))
    return "settings: {interval: 60, deadline: 20}\ntargets:\n" + "".join(targets)


def _run(config: Path, *args: str) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "RMXDIAG_CONFIG")}
    proc = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _cited(hint: dict[str, object]) -> set[str]:
    return {str(line).split(":", 1)[0] for line in hint["evidence"]}  # type: ignore[attr-defined]


def test_run_names_the_root_cause_of_each_target(lab_config: Path) -> None:
    # When the three targets are run with JSON output
    run = _run(lab_config, "--format", "json")
    doc = json.loads(run.out)
    targets = {t["name"]: t for t in doc["targets"]}
    # Then the worst target decides the Nagios exit code
    assert run.code == 2, run.err
    assert doc["schema"] == 1 and list(targets) == ["rmx-healthy", "rmx-untrusted-ca", "rmx-not-trusted-app"]

    # The healthy RMX: the probes contradict its alarm, so it stays OK with an info hint
    healthy = targets["rmx-healthy"]
    assert healthy["status"] == "ok"
    assert [(h["code"], h["severity"]) for h in healthy["hints"]] == [("ALARM_UNCORROBORATED", "info")]
    assert {"alarms", "mtls"} <= _cited(healthy["hints"][0])

    # The unrelated CA: ONE root cause, cited by all four probes (certificate, handshake, capture, alarm)
    untrusted = targets["rmx-untrusted-ca"]
    assert untrusted["status"] == "critical"
    assert [h["code"] for h in untrusted["hints"]] == ["CLIENT_CERT_UNKNOWN_CA"]
    hint = untrusted["hints"][0]
    assert _cited(hint) == {"certificate", "mtls", "capture", "alarms"}
    assert any(line.startswith("mtls: ") and "alert=48" in line and "from_fe" in line for line in hint["evidence"])
    assert any(line.startswith("capture: ") and "alert=48" in line and "direction=from_fe" in line
               for line in hint["evidence"])
    assert any("CertificateRequest CA list" in line and "Unrelated Root CA" in line for line in hint["evidence"])
    assert any("Registration handshake failure" in line for line in hint["evidence"])
    assert any("Certification Repository" in step for step in hint["remediation"])

    # The well-issued certificate whose name is not a trusted application: 403 + ms-diagnostics
    notapp = targets["rmx-not-trusted-app"]
    assert notapp["status"] == "critical"
    assert [h["code"] for h in notapp["hints"]] == ["SIP_NOT_TRUSTED"]
    assert any("1010" in line for line in notapp["hints"][0]["evidence"])
    assert any("New-CsTrustedApplicationComputer -Identity rmx2.lab.example" in step
               for step in notapp["hints"][0]["remediation"])


def test_text_report_puts_verdicts_first(lab_config: Path) -> None:
    # When run as text (not a TTY)
    run = _run(lab_config)
    lines = run.out.splitlines()
    # Then the overall verdict comes first (for people and Nagios), then one verdict line per target,
    # worst first, then the problems with numbered fix steps
    assert run.code == 2
    assert lines[0].startswith("CRITICAL: 2 of 3 RMX critical (rmx-untrusted-ca: CLIENT_CERT_UNKNOWN_CA; "
                               "rmx-not-trusted-app: SIP_NOT_TRUSTED), 1 ok | 'rmx-healthy:certificate_seconds'=")
    assert lines[1].startswith("  CRITICAL: rmx-untrusted-ca:") and "[CLIENT_CERT_UNKNOWN_CA]" in lines[1]
    assert lines[2].startswith("  CRITICAL: rmx-not-trusted-app:") and "[SIP_NOT_TRUSTED]" in lines[2]
    assert lines[3].startswith("  OK: rmx-healthy: ")
    assert "     1. " in run.out and "\x1b[" not in run.out and run.err == ""


def test_target_selection_runs_only_the_named_target(lab_config: Path) -> None:
    # When only the healthy target is selected, Then the run is OK
    run = _run(lab_config, "--target", "rmx-healthy", "--format", "json")
    assert run.code == 0, run.out
    assert [t["name"] for t in json.loads(run.out)["targets"]] == ["rmx-healthy"]
