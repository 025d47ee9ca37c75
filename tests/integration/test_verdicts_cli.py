"""What an administrator reads first and last, on the CLI's real output (subprocesses, text and JSON):
one verdict line with Nagios perfdata, nothing-to-judge that is not OK, details that agree with the
verdict, evidence in wrapped sentences, the root cause first, filled placeholders, thumbprints, one
PFX rule for `cert pfx` and `cert preflight`, the lab's way to a real RMX, `hints CODE`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.lab import pki
from probes.certificate.chain import thumbprint
from probes.certificate.pkcs12 import protection, refused
from tests.conftest import LabPKI

FQDN = "rmx.lab.example"
PERFDATA = re.compile(r"^'[^'=]+'=-?[0-9.]+(s|ms|us|%|B|KB|MB|TB|c)?(;-?[0-9.]*){0,4}$")
VERDICT = re.compile(r"^(OK|WARNING|CRITICAL|UNKNOWN): ")


def rmxdiag(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with pipes (COLUMNS from the session unless ``env`` changes it)."""
    return subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})}, cwd=cwd)


def first_line_is_a_verdict(proc: subprocess.CompletedProcess[str]) -> str:
    """The first stdout line, checked: a Nagios status word, then valid perfdata after ``|`` if any."""
    first = proc.stdout.splitlines()[0]
    assert VERDICT.match(first), first
    if " | " in first:
        items = first.split(" | ", 1)[1].split()
        assert items and all(PERFDATA.match(item) for item in items), items
    return first


def _private(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def d(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given the RMX certificate files, the Front End's trusted roots, a password file."""
    d = tmp_path_factory.mktemp("verdicts-cli")
    lab_pki.rmx.write(d, "rmx")
    (d / "fe-trust.pem").write_bytes(lab_pki.root.cert_pem + lab_pki.issuing.cert_pem)
    (d / "fe-root.pem").write_bytes(lab_pki.root.cert_pem)
    (d / "rmx.csr").write_bytes(pki.pem(pki.csr(FQDN)))
    _private(d / "rmx.pass", "Pfx-Pass-1\n")
    return d


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """Given the default lab scenario run once with its files kept (and its text output)."""
    base = tmp_path_factory.mktemp("verdicts-lab")
    done = rmxdiag("lab", "--workdir", "lab", env={"COLUMNS": "80"}, cwd=base)
    yield base, done


def test_cert_says_what_it_did_not_check_and_which_option_checks_it(d: Path) -> None:
    # When a healthy certificate is judged without --fqdn and without the Front End's trust anchors
    done = rmxdiag("cert", d / "rmx.crt", "--key", d / "rmx.key", "--chain", d / "rmx-chain.pem")
    # Then OK only for what was checked: the first line names what was not, and the options
    first = first_line_is_a_verdict(done)
    assert done.returncode == 0, done.stdout
    head, _, perf = first.partition(" | ")
    assert head.startswith(f"OK: {d / 'rmx.crt'}: no problem found in what was checked; not checked: "), first
    assert set(head.split("; not checked: ")[1].split(", the ")) == {
        "the name against the RMX signaling FQDN (give --fqdn NAME)",
        "chain against the Front End's trust anchors (give --fe-trust F)"} or set(
        head.split("; not checked: ")[1].split(", the ")) == {
        "the chain against the Front End's trust anchors (give --fe-trust F)",
        "name against the RMX signaling FQDN (give --fqdn NAME)"}, head
    assert perf.startswith("'certificate_seconds'=")
    assert "and found no problem; not checked: the " in done.stdout  # the details agree
    # And with both given, nothing is left unchecked (and --ca-bundle, the old name, still works)
    for option in ("--fe-trust", "--ca-bundle"):
        full = rmxdiag("cert", d / "rmx.crt", "--key", d / "rmx.key", "--chain", d / "rmx-chain.pem",
                       "--fqdn", FQDN, option, d / "fe-trust.pem")
        assert full.returncode == 0 and "not checked" not in full.stdout
        assert first_line_is_a_verdict(full).startswith(f"OK: {d / 'rmx.crt'}: no problem found | ")


def test_certificates_show_sha1_thumbprints_that_tell_same_name_roots_apart(d: Path, lab_pki: LabPKI) -> None:
    # Given the Front End trusting a root with the same name as the RMX's root but another key
    twin = pki.root_ca("rmxdiag Lab Root CA", key=pki.new_key(fresh=True))
    (d / "twin.pem").write_bytes(twin.cert_pem)
    done = rmxdiag("cert", d / "rmx.crt", "--chain", d / "rmx-chain.pem", "--fqdn", FQDN, "--fe-trust",
                   d / "twin.pem", "--format", "json")
    # Then the chain is refused, and the message names both roots by their SHA-1 thumbprints
    assert done.returncode == 2
    probe = json.loads(done.stdout)["targets"][0]["probes"][0]
    message = next(f["message"] for f in probe["findings"] if f["code"] == "CERT_CHAIN_INCOMPLETE")
    real, other = thumbprint(lab_pki.root.cert), thumbprint(twin.cert)
    assert real != other and f"(SHA-1 {real})" in message and other in message
    # And the certificate summary shows the leaf's thumbprint as Windows does
    assert probe["result"]["certificate"]["sha1"] == thumbprint(lab_pki.rmx.cert)
    text = rmxdiag("cert", d / "rmx.crt", "--fqdn", FQDN)
    assert f"SHA-1:     {thumbprint(lab_pki.rmx.cert)}" in text.stdout


def test_preflight_and_pfx_follow_one_encryption_rule(d: Path, lab_pki: LabPKI) -> None:
    # Given a PFX as OpenSSL 3 and newer Windows export it (AES, PBES2, SHA-256 MAC)
    modern = d / "modern.pfx"
    modern.write_bytes(lab_pki.rmx.pfx(b"Pfx-Pass-1", modern=True))
    # When pre-flighted, Then the RMX import is refused for its encryption, exit 2
    text = rmxdiag("cert", "preflight", modern, "--password-file", d / "rmx.pass", "--fqdn", FQDN,
                   "--fe-trust", d / "fe-root.pem")
    assert text.returncode == 2, text.stdout
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"CRITICAL: {modern}: The PFX is encrypted in a way the RMX import refuses "
                               "[PFX_ENCRYPTION_UNSUPPORTED]")
    assert lines[1].startswith("PRE-FLIGHT: the RMX 8.x import would refuse this ('Invalid password.')")
    # And `cert FILE` says the same (one rule, stated once)
    judged = rmxdiag("cert", modern, "--password-file", d / "rmx.pass", "--format", "json")
    assert "PFX_ENCRYPTION_UNSUPPORTED" in {h["code"] for h in json.loads(judged.stdout)["targets"][0]["hints"]}
    # When `cert pfx` assembles the same certificate, Then it writes what that rule accepts
    built = d / "built.pfx"
    done = rmxdiag("cert", "pfx", d / "rmx.crt", "--key", d / "rmx.key", "--chain", d / "rmx-chain.pem",
                   "--password-file", d / "rmx.pass", "-o", built, "--fqdn", FQDN, "--fe-trust", d / "fe-root.pem")
    assert done.returncode == 0, done.stdout + done.stderr
    sealed = protection(built.read_bytes())
    assert sealed is not None and refused(sealed) is None and sealed.mac == "SHA-1"
    assert sealed.schemes == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    # And pre-flight accepts what `cert pfx` wrote
    accepted = rmxdiag("cert", "preflight", built, "--password-file", d / "rmx.pass", "--fqdn", FQDN,
                       "--fe-trust", d / "fe-root.pem")
    assert accepted.returncode == 0 and accepted.stdout.splitlines()[1] == "PRE-FLIGHT: the RMX will accept this"


def test_lab_verdict_first_details_agree_evidence_wrapped(
        lab_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _base, done = lab_dir
    # Then the lab's first line is its verdict with perfdata, the banner after it names the kept directory
    first = first_line_is_a_verdict(done)
    assert done.returncode == 2 and first.startswith("CRITICAL: lab-untrusted-ca: ")
    flat = " ".join(done.stdout.split())
    assert "simulated RMX files : lab (certificate, key, alarm report, capture)" in flat
    lines = done.stdout.splitlines()
    # And every other line fits 80 columns (COLUMNS=80): evidence is wrapped, not 400 characters long
    assert [line for line in lines[1:] if len(line) > 80] == []
    # And evidence is plain sentences: no key=value (that stays in -v and JSON)
    evidence = [line for line in lines if line.startswith("   - ")]
    assert evidence and not any(re.search(r"\b[a-z_]+=\S", line) for line in evidence), evidence
    # And the details say what each probe ran and what it found, in agreement with the verdict
    assert "  [certificate] ran in " in done.stdout and "and found CERT_CHAIN_INCOMPLETE (critical)" in done.stdout
    assert re.search(r"\[alarms\] ran in \d+ ms and found RMX_ALARM_REGISTRATION \(critical\)", done.stdout)
    assert " ok in " not in done.stdout
    # And the hint says where its fix goes and how many probes agree
    assert "Fix on the Front End and the RMX. How sure: 4 of the 4 probes that ran agree" in " ".join(
        line.strip() for line in lines)


def test_lab_ends_with_next_steps_that_work_on_the_kept_files(
        lab_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, done = lab_dir
    # Given the commands the lab printed under "Next:" (shell continuations joined)
    tail = done.stdout.split("\nNext:\n", 1)[1].replace(" \\\n", " ")
    commands = [line.strip() for line in tail.splitlines() if line.strip().startswith("rmxdiag ")]
    assert [c.split()[1] for c in commands] == ["cert", "alarms", "pcap"], commands
    # When each runs where the lab ran, Then each judges the kept files (the scenario is critical)
    for command in commands:
        ran = rmxdiag(*shlex.split(command)[1:], cwd=base)
        assert ran.returncode == 2, (command, ran.stdout, ran.stderr)
        first_line_is_a_verdict(ran)


def test_json_hints_carry_where_and_how_sure(lab_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, _done = lab_dir
    doc = rmxdiag("cert", base / "lab/rmx-cert.pem", "--fe-trust", base / "lab/frontend-trusted-roots.pem",
                  "--chain", base / "lab/rmx-chain.pem", "--fqdn", FQDN, "--format", "json")
    hint: dict[str, Any] = json.loads(doc.stdout)["targets"][0]["hints"][0]
    # Then the schema 1 keys stay, and fix_on / confidence / sentences are added
    assert hint["code"] == "CERT_CHAIN_INCOMPLETE" and hint["fix_on"] == ["rmx", "front_end"]
    assert hint["confidence"] == {"probes": ["certificate"], "agreeing": 1, "ran": 1}
    assert hint["evidence"][0].startswith("certificate: ") and "path=" in hint["evidence"][0]
    assert hint["sentences"][0].startswith("Certificate check: Root 'Fabrikam Partner Root CA' (SHA-1 ")
    # And -v shows the key=value evidence in text
    verbose = rmxdiag("cert", base / "lab/rmx-cert.pem", "--fe-trust", base / "lab/frontend-trusted-roots.pem",
                      "--chain", base / "lab/rmx-chain.pem", "--fqdn", FQDN, "-v")
    assert "path=[rmx.lab.example, Fabrikam Partner Issuing CA, Fabrikam Partner Root CA]" in verbose.stdout


@pytest.mark.peer("tshark")
def test_root_cause_before_its_symptom(tmp_path: Path) -> None:
    # When the request-pasted scenario runs
    done = rmxdiag("lab", "--scenario", "request-pasted-as-certificate", "--format", "json", cwd=tmp_path)
    codes = [h["code"] for h in json.loads(done.stdout)["targets"][0]["hints"]]
    # Then the cause (the request pasted) heads the list, before the empty certificate it produced
    assert codes[:2] == ["CERT_IS_REQUEST", "CAPTURE_EMPTY_CLIENT_CERT"], codes


def test_placeholders_are_filled_from_what_was_probed(tmp_path: Path) -> None:
    # When the not-trusted-app scenario runs (the Front End answers 403 to the RMX)
    done = rmxdiag("lab", "--scenario", "not-trusted-app", "--format", "json", cwd=tmp_path)
    hint = next(h for h in json.loads(done.stdout)["targets"][0]["hints"] if h["code"] == "SIP_NOT_TRUSTED")
    steps = " ".join(hint["remediation"])
    # Then the cmdlets name the RMX's FQDN and the Front End pool the probe registered with
    assert "New-CsTrustedApplicationComputer -Identity rmx.lab.example" in steps
    assert "-Registrar pool.lab.example" in steps
    assert "<RMX signaling FQDN>" not in steps and "<registrar pool FQDN>" not in steps


@pytest.mark.peer("tshark")
def test_pcap_on_the_wrong_port_is_nothing_to_judge(lab_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, _done = lab_dir
    capture = base / "lab/rmx-frontend.pcap"
    # When the lab's capture (TLS on 5061) is read for port 5060
    text = rmxdiag("pcap", capture, "--port", "5060")
    doc = rmxdiag("pcap", capture, "--port", "5060", "--format", "json")
    # Then exit 3, and the verdict says what was seen instead and how to read it
    assert text.returncode == 3 and doc.returncode == 3
    first = first_line_is_a_verdict(text)
    assert first.startswith(f"UNKNOWN: {capture}: nothing to judge (capture: no connection on port 5060 in "
                            f"{capture}; TLS seen on port 5061 (1 ClientHello): read it again with --port 5061)")
    target = json.loads(doc.stdout)["targets"][0]
    assert target["status"] == "unknown" and target["hints"] == []
    finding = next(f for f in target["probes"][0]["findings"] if f["code"] == "CAPTURE_NOTHING_TO_JUDGE")
    assert finding["evidence"]["tls_ports"] == {"5061": 1}


def test_run_with_two_targets_leads_with_the_overall_verdict(d: Path, lab_pki: LabPKI, tmp_path: Path) -> None:
    # Given a healthy RMX and a branch RMX whose chain the Front End cannot complete
    (tmp_path / "rmx.key").write_bytes((d / "rmx.key").read_bytes())
    (tmp_path / "rmx.key").chmod(0o600)
    config = tmp_path / "rmxdiag.yaml"
    config.write_text(
        "targets:\n"
        f"  - name: rmx-hq\n    fqdn: {FQDN}\n    ca_bundle: {d / 'fe-trust.pem'}\n"
        f"    certificate: {{cert: {d / 'rmx.crt'}, key: rmx.key, chain: {d / 'rmx-chain.pem'}}}\n"
        f"  - name: rmx-branch\n    fqdn: {FQDN}\n    ca_bundle: {d / 'fe-root.pem'}\n"
        f"    certificate: {{cert: {d / 'rmx.crt'}, key: rmx.key}}\n")
    done = rmxdiag("run", "-c", config)
    # Then the first line is the overall verdict, then one line per target, worst first
    assert done.returncode == 2, done.stdout + done.stderr
    first = first_line_is_a_verdict(done)
    assert first.startswith("CRITICAL: 1 of 2 RMX critical (rmx-branch: CERT_CHAIN_INCOMPLETE), 1 ok | "
                            "'rmx-hq:certificate_seconds'="), first
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  CRITICAL: rmx-branch: ") and lines[2].startswith("  OK: rmx-hq: no problem found")
    # And JSON is the same report document, with the same exit code
    doc = rmxdiag("run", "-c", config, "--format", "json")
    assert doc.returncode == 2 and [t["status"] for t in json.loads(doc.stdout)["targets"]] == ["ok", "critical"]


def test_hints_code_prints_one_hint() -> None:
    # When one code is asked for (in any case), Then only that hint, with where its fix goes
    text = rmxdiag("hints", "cert_is_request")
    assert text.returncode == 0 and text.stdout.startswith("CERT_IS_REQUEST [critical] A certificate request")
    assert text.stdout.count(" [critical] ") + text.stdout.count(" [warning] ") == 1
    assert "Fix on the RMX." in text.stdout
    doc = json.loads(rmxdiag("hints", "CLIENT_CERT_UNKNOWN_CA", "--format", "json").stdout)
    assert doc["code"] == "CLIENT_CERT_UNKNOWN_CA" and doc["fix_on"] == ["front_end", "rmx"]
    # And an unknown code is exit 3 with the closest ones named
    wrong = rmxdiag("hints", "CLIENT_CERT_UNKNOWN")
    assert wrong.returncode == 3 and "did you mean CLIENT_CERT_UNKNOWN_CA" in wrong.stderr


def test_every_reporting_subcommand_starts_with_its_verdict(d: Path) -> None:
    # When the single-object subcommands judge something, Then the first line is the verdict
    alarms = Path(__file__).resolve().parents[1] / "fixtures" / "alarms" / "report_tabs.txt"
    for argv in (["cert", d / "rmx.crt", "--fqdn", FQDN], ["cert", "csr", d / "rmx.csr"], ["alarms", alarms],
                 ["probe", "127.0.0.1:1", "--timeout", "2"]):
        done = rmxdiag(*argv)
        first_line_is_a_verdict(done)
