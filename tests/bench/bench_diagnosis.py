"""Config loading and diagnosis cost, each beside its baseline in the same run.

- ``load_config`` of a 500-target file vs a plain safe load of the same file with the same
  (libyaml) parser: the price of
  line tracking, the closed schema and the file checks (goal: at most 6x; the ratio, not the
  absolute time, is the stable figure on a shared machine).
- ``diagnose`` of one target with 14 findings from four probes vs the foundation's baseline
  (one hint per catalogue code, no correlation): the price of the rules (goal: at most 10x and
  under 1 ms per target, so a 500-target daemon spends under 0.5 s per cycle on rules).
- ``rmxdiag check-config`` wall time on that file vs ``rmxdiag --version`` (interpreter + CLI
  start): what a monitoring check pays (goal: under 1.5 s).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from daemon.config.load import load_config
from daemon.diagnosis.catalogue import CATALOGUE, Firmware, remediation
from daemon.diagnosis.diagnose import diagnose, evidence_line
from daemon.report import Hint, sort_hints
from probes.model import Facts, Finding, ProbeOutcome, ProbeStatus, Severity
from probes.tlswire import Alert, Sender
from tests.bench.common import Row, interleaved, print_table

TARGETS = 500


def _write_config(directory: Path) -> Path:
    (directory / "ca.pem").write_text("x\n")
    for name in ("rmx.key", "rmx.pass"):
        (directory / name).write_text("x\n")
        (directory / name).chmod(0o600)
    (directory / "rmx.pem").write_text("x\n")
    (directory / "alerts.txt").write_text("x\n")
    body = ["settings: {interval: 60, deadline: 10}", "targets:"]
    for i in range(TARGETS):
        body.append(f"""  - name: rmx-{i:04d}
    fqdn: rmx-{i:04d}.example.com
    signaling_ip: 10.0.{i // 250}.{i % 250 + 1}
    firmware: "8.x"
    certificate: {{cert: rmx.pem, key: rmx.key}}
    ca_bundle: ca.pem
    registrars:
      - {{host: pool01.example.com, port: 5061, sni: pool01.example.com, tls_min: "1.0", tls_max: "1.2"}}
      - {{srv_domain: example.com}}
    alarms: {{report_files: [alerts.txt]}}""")
    config = directory / "rmxdiag.yaml"
    config.write_text("\n".join(body) + "\n")
    return config


def _median(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _outcomes() -> tuple[ProbeOutcome, ...]:
    c, w, i = Severity.CRITICAL, Severity.WARNING, Severity.INFO
    ev = {"registrar": "fe:5061", "stage": "tls", "alert": 48, "direction": "from_fe",
          "ca_names": ["CN=Root A", "CN=Root B", "CN=Issuing B"], "tls_version": "TLSv1.2"}
    # The typed facts the probes attach (DER names stand in as short distinct byte strings).
    fe48 = Facts(alert=Alert(48, Sender.FE), after_client_cert=True, ca_list=(b"0\x01A", b"0\x01B", b"0\x01C"))
    return (
        ProbeOutcome("certificate", ProbeStatus.OK, 0.01, (
            Finding("CERT_SUMMARY", i, "summary", {"issuer": "CN=Issuing A", "subject": "CN=rmx"},
                    Facts(rmx_issuer=b"0\x01I")),
            Finding("CERT_CHAIN_INCOMPLETE", c, "chain", {"subject": "CN=rmx"}),
            Finding("CERT_NO_CDP", w, "no cdp"), Finding("CERT_SAN_PRESENT", w, "san"))),
        ProbeOutcome("mtls", ProbeStatus.OK, 0.01, (
            Finding("CLIENT_CERT_UNKNOWN_CA", c, "alert 48", ev, fe48),
            Finding("CLIENT_CERT_UNKNOWN_CA", c, "alert 48 (second registrar)", {**ev, "registrar": "fe2:5061"},
                    fe48))),
        ProbeOutcome("capture", ProbeStatus.OK, 0.01, (
            Finding("CAPTURE_TLS_ALERT", c, "alert 48", {"alert": 48, "direction": "from_fe"},
                    Facts(alert=Alert(48, Sender.FE))),
            Finding("CAPTURE_TLS_ALERT", c, "alert 70", {"alert": 70, "direction": "from_fe"},
                    Facts(alert=Alert(70, Sender.FE))),
            Finding("CAPTURE_RESET_AFTER_CLIENT_CERT", c, "rst", {"reason": "reset"},
                    Facts(after_client_cert=True, dropped_after_client_cert=True)),
            Finding("CAPTURE_SUMMARY", i, "12 connections"))),
        ProbeOutcome("alarms", ProbeStatus.OK, 0.01, (
            Finding("RMX_ALARM_REGISTRATION", c, "handshake",
                    {"alarm_texts": ["SIP TLS: Registration handshake failure"]}),
            Finding("RMX_ALARM_CERTIFICATE", w, "about to expire", {"alarm_texts": ["about to expire"]}),
            Finding("ALARMS_ICE", i, "ice"), Finding("ALARMS_XML_API", i, "2 alarms"))),
    )


def _baseline_diagnose(outcomes: tuple[ProbeOutcome, ...]) -> tuple[Hint, ...]:
    """The foundation's diagnosis: one hint per catalogue code seen, no correlation."""
    grouped: dict[str, list[tuple[str, Finding]]] = {}
    for outcome in outcomes:
        for finding in outcome.findings:
            if finding.code in CATALOGUE:
                grouped.setdefault(finding.code, []).append((outcome.probe, finding))
    hints = []
    for code, seen in grouped.items():
        severity = max((f.severity for _, f in seen), key=lambda s: s.rank)
        hints.append(Hint(code, severity, CATALOGUE[code].title, tuple(evidence_line(p, f) for p, f in seen),
                          tuple(remediation(code, Firmware.V8))))
    return sort_hints(hints)


def main() -> int:
    """Measure and print the table."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = _write_config(Path(tmp))
        text = config.read_text()
        fastest = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the same parser the loader uses
        base = _median(lambda: yaml.load(text, Loader=fastest), 5)  # noqa: S506 (a safe loader)
        ours = _median(lambda: load_config(config), 5)
        rows.append(Row(f"load_config, {TARGETS} targets", ours * 1000, "ms", f"C safe_load {base * 1000:.1f} ms",
                        ours / base, "<= 6x", ours / base <= 6))
        walls = interleaved({"check": [sys.executable, "-m", "daemon.cli", "check-config", "-c", str(config)],
                             "version": [sys.executable, "-m", "daemon.cli", "--version"]}, runs=5)
        rows.append(Row(f"rmxdiag check-config, {TARGETS} targets", walls["check"] * 1000, "ms",
                        f"--version {walls['version'] * 1000:.0f} ms", walls["check"] / walls["version"],
                        "< 1500 ms", walls["check"] < 1.5))
    outcomes = _outcomes()
    assert len(diagnose(outcomes)) < len(_baseline_diagnose(outcomes))  # the rules do correlate
    loops = 2000
    base = _median(lambda: [_baseline_diagnose(outcomes) for _ in range(loops)], 5) / loops
    ours = _median(lambda: [diagnose(outcomes) for _ in range(loops)], 5) / loops
    rows.append(Row("diagnose, 14 findings / 4 probes", ours * 1e6, "us", f"baseline {base * 1e6:.0f} us",
                    ours / base, "<= 10x, < 1000 us", ours / base <= 10 and ours < 1e-3))
    return print_table("config loading and diagnosis", rows)


if __name__ == "__main__":
    sys.exit(main())
