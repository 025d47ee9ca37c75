"""`rmxdiag probe` verdicts that do not overclaim, on the CLI's real output against a real Front End
stand-in (Kamailio with TLS, the RMX PKI generated per session).

Without the RMX's trust anchors the probe must not judge the Front End's chain by this host's
system store: it finishes the handshake as far as the Front End lets it, records the chain as not
checked and shows what the Front End does with the RMX certificate. Without a client certificate
a refusal is expected and worded so. A TLS timeout is not "ok" in the details.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.kamailio import Registrar as Fe
from tests.support.kamailio import kamailio_registrar

pytestmark = pytest.mark.peer("kamailio")
POOL = "pool.lab.example"
PERFDATA = re.compile(r"^'[^'=]+'=-?[0-9.]+(s|ms|us|%|B|KB|MB|TB|c)?(;-?[0-9.]*){0,4}$")


def rmxdiag(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a monitoring system runs it: a subprocess, stdout and stderr captured (pipes)."""
    return subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def perf_items(first_line: str) -> list[str]:
    """The Nagios perfdata items after ``|`` on a verdict line ([] when there is none)."""
    return first_line.split(" | ", 1)[1].split() if " | " in first_line else []


@pytest.fixture(scope="module")
def files(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Given the RMX certificate, key and chain, and the CAs the RMX trusts (the enterprise root)."""
    d = tmp_path_factory.mktemp("verdicts-probe")
    paths = lab_pki.rmx.write(d, "rmx")
    other = d / "other-root.pem"
    other.write_bytes(lab_pki.other_root.cert_pem)
    return {"dir": d, "cert": paths["cert"], "key": paths["key"], "chain": paths["chain"],
            "rmx_trust": lab_pki.ca_bundle(d), "other": other}


@pytest.fixture(scope="module")
def fe_trusting(lab_pki: LabPKI, files: dict[str, Path]) -> Iterator[Fe]:
    """Given a Front End that trusts the RMX's CA and its name (a healthy registrar)."""
    with kamailio_registrar(files["dir"] / "kam-ok", lab_pki.fe, files["rmx_trust"], trusted_cn=lab_pki.fqdn) as fe:
        yield fe


@pytest.fixture(scope="module")
def fe_distrusting(lab_pki: LabPKI, files: dict[str, Path]) -> Iterator[Fe]:
    """Given a Front End whose trusted roots do not include the RMX's CA (only an unrelated root)."""
    with kamailio_registrar(files["dir"] / "kam-other", lab_pki.fe, files["other"], trusted_cn=lab_pki.fqdn) as fe:
        yield fe


def _identity(files: dict[str, Path]) -> list[str | Path]:
    return ["--cert", files["cert"], "--key", files["key"], "--chain", files["chain"]]


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    target: dict[str, Any] = json.loads(proc.stdout)["targets"][0]
    return target


def test_without_rmx_trust_the_front_end_still_judges_the_rmx_certificate(fe_distrusting: Fe,
                                                                          files: dict[str, Path]) -> None:
    # When the RMX's handshake is probed without --rmx-trust against a Front End that distrusts its CA
    argv = ["probe", f"127.0.0.1:{fe_distrusting.port}", "--sni", POOL, *_identity(files), "--timeout", "10"]
    text, doc = rmxdiag(*argv), rmxdiag(*argv, "--format", "json")
    # Then the real cause is found (the Front End refuses the RMX's issuer), not "the RMX cannot verify
    # the Front End" from this host's own trust store
    assert text.returncode == 2, text.stdout + text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith(f"CRITICAL: 127.0.0.1:{fe_distrusting.port}: The Front End does not trust the RMX "
                            "certificate's issuer [CLIENT_CERT_UNKNOWN_CA]"), first
    assert "not checked: the Front End chain against the RMX's trust store (give --rmx-trust F)" in first
    assert "REGISTRAR_CERT_UNTRUSTED" not in text.stdout + doc.stdout
    # And the Front End's chain was recorded (with thumbprints) and marked as not checked
    target = _json(doc)
    registrar = target["probes"][0]["result"]["registrars"][0]
    assert registrar["fe_chain_checked"] is False and registrar["alert"] == 48
    assert registrar["server_chain"][0]["subject"] == "CN=fe01.lab.example"
    assert all(re.fullmatch(r"([0-9A-F]{2}:){19}[0-9A-F]{2}", c["sha1"]) for c in registrar["server_chain"])
    unchecked = [f for f in target["probes"][0]["findings"] if f["code"] == "MTLS_FE_CHAIN_UNCHECKED"]
    assert unchecked and unchecked[0]["severity"] == "info" and unchecked[0]["evidence"]["option"] == "--rmx-trust F"
    assert "FE chain: not checked against the RMX's trust store (give --rmx-trust, or ca_bundle)" in text.stdout


def test_with_rmx_trust_nothing_is_left_unchecked(fe_trusting: Fe, files: dict[str, Path]) -> None:
    # When the healthy registrar is probed with the RMX's trust anchors, Then OK with nothing unchecked
    done = rmxdiag("probe", f"127.0.0.1:{fe_trusting.port}", "--sni", POOL, *_identity(files),
                   "--rmx-trust", files["rmx_trust"])
    first = done.stdout.splitlines()[0]
    assert done.returncode == 0 and first.startswith(f"OK: 127.0.0.1:{fe_trusting.port}: no problem found | "), first
    assert "not checked" not in done.stdout
    # And the perfdata follows the Nagios syntax: probe duration and the MTLS phases in seconds, days to expiry
    items = perf_items(first)
    assert all(PERFDATA.match(item) for item in items), items
    labels = {item.split("=")[0] for item in items}
    assert {"'mtls_seconds'", "'mtls_tls_seconds'", "'mtls_sip_seconds'", "'rmx_cert_days'", "'fe_cert_days'"} <= labels
    # And the old option name still works (an alias)
    alias = rmxdiag("probe", f"127.0.0.1:{fe_trusting.port}", "--sni", POOL, *_identity(files),
                    "--ca-bundle", files["rmx_trust"])
    assert alias.returncode == 0 and "not checked" not in alias.stdout


def test_without_trust_a_healthy_front_end_is_ok_in_what_was_checked(fe_trusting: Fe, files: dict[str, Path]) -> None:
    # When the healthy registrar is probed without --rmx-trust
    done = rmxdiag("probe", f"127.0.0.1:{fe_trusting.port}", "--sni", POOL, *_identity(files))
    # Then OK, but the verdict says what was not checked and which option checks it
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith(f"OK: 127.0.0.1:{fe_trusting.port}: no problem found in what was checked; not "
                                  "checked: the Front End chain against the RMX's trust store (give --rmx-trust F)")
    assert "[mtls] ran in " in done.stdout and "and found no problem; not checked: the Front End chain" in done.stdout


def test_without_a_client_certificate_the_refusal_is_expected_and_says_how_to_test_the_rmx(
        fe_trusting: Fe, files: dict[str, Path]) -> None:
    # When the registrar is probed with no client certificate at all
    argv = ["probe", f"127.0.0.1:{fe_trusting.port}", "--sni", POOL, "--rmx-trust", files["rmx_trust"]]
    text, doc = rmxdiag(*argv), rmxdiag(*argv, "--format", "json")
    # Then the finding stays CLIENT_CERT_REJECTED, as a warning: the refusal is what MTLS must do
    assert text.returncode == 1, text.stdout + text.stderr
    hint = _json(doc)["hints"][0]
    assert hint["code"] == "CLIENT_CERT_REJECTED" and hint["severity"] == "warning"
    assert hint["title"] == ("The Front End refused a peer without a certificate (expected: the RMX certificate was "
                             "not tested)")
    # And the words say no certificate was presented, and how to test the RMX's own certificate
    assert "no client certificate was presented" in " ".join(hint["sentences"])
    steps = " ".join(hint["remediation"])
    assert "Nothing to fix on the Front End" in steps and "reboot" not in steps.lower()
    assert f"rmxdiag probe 127.0.0.1:{fe_trusting.port} --pfx rmx.pfx --password-file rmx.pass" in steps
    first = text.stdout.splitlines()[0]
    assert first.startswith(f"WARNING: 127.0.0.1:{fe_trusting.port}: The Front End refused a peer without a "
                            "certificate") and "not checked: the RMX's own certificate (give --pfx F" in first


def test_a_tls_timeout_is_not_ok_in_the_details(files: dict[str, Path]) -> None:
    # Given a tarpit (accepts TCP, never speaks TLS)
    with peers.tarpit() as port:
        done = rmxdiag("probe", f"127.0.0.1:{port}", "--sni", POOL, *_identity(files), "--timeout", "1")
    # Then the verdict and the details agree: what ran, and what it found
    assert done.returncode == 2
    assert done.stdout.startswith(f"CRITICAL: 127.0.0.1:{port}: TCP connects but TLS never answers "
                                  "[REGISTRAR_TLS_TIMEOUT]")
    details = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("[mtls]")]
    assert len(details) == 1 and re.fullmatch(r"\[mtls\] ran in \d+ ms and found REGISTRAR_TLS_TIMEOUT \(critical\)",
                                              details[0]), details
    assert " ok in " not in done.stdout
