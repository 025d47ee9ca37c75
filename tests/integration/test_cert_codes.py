"""`rmxdiag cert`: every CERT_*/PFX_* code from a generated certificate with exactly that flaw.

Each test runs the real CLI in a subprocess against files written from the session PKI, and
checks the exit code and that the warning/critical hints are exactly the expected one.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.lab import pki
from tests.conftest import LabPKI
from tests.support.cert import CANARY, FQDN, findings, password_file, problems, report, rmxdiag, write
from tests.support.peers import free_port

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CDP = ["http://127.0.0.1:9/lab.crl"]


@pytest.fixture(scope="module")
def env(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Given the lab PKI on disk: chain (intermediate + root), the Front End's root, the key."""
    d = tmp_path_factory.mktemp("certcodes")
    return {"dir": d, "chain": write(d / "chain.pem", lab_pki.issuing.cert, lab_pki.root.cert),
            "bundle": write(d / "root.pem", lab_pki.root.cert),
            "key": write(d / "key.pem", lab_pki.rmx.key_pem)}


def _judge(env: dict[str, Path], cert: pki.Issued | Path, *extra: str, name: str = "leaf.pem",
           full: bool = True) -> Any:
    path = cert if isinstance(cert, Path) else write(env["dir"] / name, cert.cert)
    args: list[str | Path] = ["cert", path, "--format", "json"]
    if full:
        args += ["--chain", env["chain"], "--ca-bundle", env["bundle"], "--fqdn", FQDN, "--key", env["key"]]
    return rmxdiag(*args, *extra)


def _flawed(lab: LabPKI, cn: str = FQDN, **kw: Any) -> pki.Issued:
    kw.setdefault("cdp", CDP)
    return pki.issue(pki.name(cn, O="rmxdiag lab"), lab.issuing, **kw)


def test_healthy_certificate_exits_0_without_problems(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given the healthy RMX certificate with its key, chain, FQDN and the Front End's root
    proc = _judge(env, lab_pki.rmx)
    # Then exit 0, no warning or critical hint, and the chain was verified
    assert proc.returncode == 0, proc.stdout
    assert problems(proc) == {}
    assert "CERT_CHAIN_OK" in {f["code"] for f in findings(proc)}


def test_healthy_text_report_reads_verdict_then_summary(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given the healthy certificate, When the text report is asked for
    path = write(env["dir"] / "healthy.pem", lab_pki.rmx.cert)
    proc = rmxdiag("cert", path, "--chain", env["chain"], "--ca-bundle", env["bundle"], "--fqdn", FQDN)
    # Then the first line is the verdict and the summary names subject, EKUs and key
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].startswith("OK: ")
    assert any("EKU:       serverAuth, clientAuth" in line for line in lines)
    assert any(line.strip().startswith("subject:   CN=rmx.lab.example") for line in lines)


@pytest.mark.parametrize("case", [
    ("cn", {"cn": "other.lab.example"}, "CERT_CN_MISMATCH", "critical", 2),
    ("san-without-fqdn", {"sans": ["other.lab.example"]}, "CERT_CN_MISMATCH", "critical", 2),
    ("san-with-fqdn", {"sans": [FQDN]}, "CERT_SAN_PRESENT", "warning", 1),
    ("eku", {"ekus": [pki.SERVER_AUTH]}, "CERT_EKU_MISSING", "critical", 2),
    ("expired", {"not_before": NOW - dt.timedelta(days=400), "not_after": NOW - dt.timedelta(days=2)},
     "CERT_EXPIRED", "critical", 2),
    ("future", {"not_before": NOW + dt.timedelta(days=2), "days": 365}, "CERT_NOT_YET_VALID", "critical", 2),
    ("soon", {"days": 10}, "CERT_EXPIRING_SOON", "warning", 1),
    ("pss", {"pss": True}, "CERT_SIGNATURE_UNSUPPORTED", "critical", 2),
    ("sha512", {"hash_name": "sha512"}, "CERT_SIGNATURE_UNSUPPORTED", "warning", 1),
    ("md5", {"hash_name": "md5"}, "CERT_SIGNATURE_UNSUPPORTED", "warning", 1),
    ("nocdp", {"cdp": []}, "CERT_NO_CDP", "warning", 1),
], ids=lambda case: case[0])
def test_each_flaw_gives_exactly_its_code(lab_pki: LabPKI, env: dict[str, Path],
                                          case: tuple[str, dict[str, Any], str, str, int]) -> None:
    label, kwargs, code, severity, exit_code = case
    # Given a certificate that differs from the healthy one by exactly one flaw
    cert = _flawed(lab_pki, **kwargs)
    # When rmxdiag cert judges it with everything else right
    proc = _judge(env, cert, name=f"{label}.pem")
    # Then that code alone is reported, with the Nagios exit code of its severity
    assert problems(proc) == {code: severity}, proc.stdout
    assert proc.returncode == exit_code
    hint = report(proc)["hints"][0]
    assert hint["remediation"] and hint["evidence"]
    finding = next(f for f in findings(proc) if f["code"] == code)
    assert finding["evidence"]["subject"].startswith("CN=") and finding["evidence"]["serial"]


def test_weak_key(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given an RSA 1024 leaf and its own key
    weak_key = pki.new_key(size=1024)
    cert = _flawed(lab_pki, key=weak_key)
    key = write(env["dir"] / "weak.key", pki.Issued(cert.cert, weak_key).key_pem)
    proc = rmxdiag("cert", write(env["dir"] / "weak.pem", cert.cert), "--chain", env["chain"], "--ca-bundle",
                   env["bundle"], "--fqdn", FQDN, "--key", key, "--format", "json")
    # Then only CERT_WEAK_KEY, with the key size in evidence
    assert problems(proc) == {"CERT_WEAK_KEY": "warning"} and proc.returncode == 1
    assert next(f for f in findings(proc) if f["code"] == "CERT_WEAK_KEY")["evidence"]["key_bits"] == 1024


def test_self_signed_factory_certificate(env: dict[str, Path]) -> None:
    # Given the RMX factory default certificate (SHA-1 self-signed, Polycom subject)
    factory = pki.factory_self_signed(FQDN)
    proc = _judge(env, write(env["dir"] / "factory.pem", factory.cert), "--key",
                  write(env["dir"] / "factory.key", factory.key_pem))
    # Then CERT_SELF_SIGNED alone, recognised as the factory default
    assert problems(proc) == {"CERT_SELF_SIGNED": "critical"} and proc.returncode == 2
    assert next(f for f in findings(proc) if f["code"] == "CERT_SELF_SIGNED")["evidence"]["factory_default"] is True


@pytest.mark.parametrize("form", ["pem", "der"])
def test_request_instead_of_certificate(env: dict[str, Path], form: str) -> None:
    # Given the CSR pasted where the issued certificate belongs (PEM and DER)
    request = pki.csr(FQDN)
    path = env["dir"] / f"request.{form}"
    path.write_bytes(pki.pem(request) if form == "pem" else pki.der(request))
    proc = rmxdiag("cert", path, "--format", "json")
    # Then CERT_IS_REQUEST with the remedy (paste the issued certificate)
    assert problems(proc) == {"CERT_IS_REQUEST": "critical"} and proc.returncode == 2
    assert any("not the request" in step for step in report(proc)["hints"][0]["remediation"])


def test_key_mismatch(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given the healthy certificate and somebody else's key
    other = pki.Issued(lab_pki.rmx.cert, pki.new_key(fresh=True))
    proc = _judge(env, lab_pki.rmx, "--key", write(env["dir"] / "other.key", other.key_pem))
    # Then CERT_KEY_MISMATCH alone
    assert problems(proc) == {"CERT_KEY_MISMATCH": "critical"} and proc.returncode == 2


def test_chain_missing_intermediate_is_named(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given a chain that holds only the root (the issuing CA is missing)
    only_root = write(env["dir"] / "only-root.pem", lab_pki.root.cert)
    proc = rmxdiag("cert", write(env["dir"] / "rmx.pem", lab_pki.rmx.cert), "--chain", only_root,
                   "--ca-bundle", env["bundle"], "--fqdn", FQDN, "--format", "json")
    # Then CERT_CHAIN_INCOMPLETE names the missing intermediate and where it is missing
    assert problems(proc) == {"CERT_CHAIN_INCOMPLETE": "critical"} and proc.returncode == 2
    message = next(f for f in findings(proc) if f["code"] == "CERT_CHAIN_INCOMPLETE")["message"]
    assert "'rmxdiag Lab Issuing CA'" in message and "not in the chain you supplied" in message.replace(
        "neither in the chain you supplied", "not in the chain you supplied")


def test_chain_root_not_in_bundle(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given a complete chain but a Front End that trusts only an unrelated root
    other = write(env["dir"] / "other-root.pem", lab_pki.other_root.cert)
    proc = rmxdiag("cert", write(env["dir"] / "rmx2.pem", lab_pki.rmx.cert), "--chain", env["chain"],
                   "--ca-bundle", other, "--fqdn", FQDN, "--format", "json")
    # Then the report says the root is not trusted by the bundle
    assert problems(proc) == {"CERT_CHAIN_INCOMPLETE": "critical"}
    message = next(f for f in findings(proc) if f["code"] == "CERT_CHAIN_INCOMPLETE")["message"]
    assert "root 'rmxdiag Lab Root CA' (SHA-1 " in message and "is not in the Front End's trust anchors (--fe-trust)" \
        in message


def test_pfx_bad_password(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given a PFX and a password file with the wrong password
    pfx = env["dir"] / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(b"the-right-one"))
    proc = rmxdiag("cert", pfx, "--password-file", password_file(env["dir"]), "--format", "json")
    # Then PFX_BAD_PASSWORD, exit 2, and the password never shows
    assert problems(proc) == {"PFX_BAD_PASSWORD": "critical"} and proc.returncode == 2
    assert CANARY not in proc.stdout + proc.stderr


def test_dns_mismatch_against_local_resolution(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given a certificate for 'localhost', which resolves to 127.0.0.1 here
    cert = _flawed(lab_pki, cn="localhost")
    path = write(env["dir"] / "localhost.pem", cert.cert)
    args = ["--chain", env["chain"], "--ca-bundle", env["bundle"], "--fqdn", "localhost", "--format", "json"]
    # When the signaling IP is another address, Then CERT_DNS_MISMATCH with what it resolved to
    wrong = rmxdiag("cert", path, *args, "--signaling-ip", "192.0.2.10")
    assert problems(wrong) == {"CERT_DNS_MISMATCH": "critical"} and wrong.returncode == 2
    evidence = next(f for f in findings(wrong) if f["code"] == "CERT_DNS_MISMATCH")["evidence"]
    assert "127.0.0.1" in evidence["resolved"]
    # When it is 127.0.0.1, Then no problem at all
    right = rmxdiag("cert", path, *args, "--signaling-ip", "127.0.0.1")
    assert problems(right) == {} and right.returncode == 0


def test_dns_unresolvable_name(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given an FQDN under the reserved .invalid TLD (never resolves, RFC 6761)
    cert = _flawed(lab_pki, cn="rmx.nowhere.invalid")
    proc = rmxdiag("cert", write(env["dir"] / "invalid.pem", cert.cert), "--chain", env["chain"], "--ca-bundle",
                   env["bundle"], "--fqdn", "rmx.nowhere.invalid", "--signaling-ip", "127.0.0.1", "--format", "json")
    # Then the FQDN is reported as not resolving to the signaling IP
    assert problems(proc) == {"CERT_DNS_MISMATCH": "critical"}


class _CrlHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"0" * 2048  # the content is not parsed: reachability is what the check is about
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def crl_server() -> Iterator[str]:
    """Given a real HTTP server on loopback port 0 publishing the CRL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CrlHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lab.crl"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_revocation_reachable_and_unreachable(lab_pki: LabPKI, env: dict[str, Path], crl_server: str) -> None:
    # Given one certificate whose CDP is served and one whose CDP port is closed
    closed = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", closed)) != 0  # nothing listens there
    good = write(env["dir"] / "cdp-ok.pem", _flawed(lab_pki, cdp=[crl_server]).cert)
    bad = write(env["dir"] / "cdp-bad.pem", _flawed(lab_pki, cdp=[f"http://127.0.0.1:{closed}/x.crl"]).cert)
    args = ["--chain", env["chain"], "--ca-bundle", env["bundle"], "--fqdn", FQDN, "--check-revocation",
            "--format", "json"]
    # Then the served CDP is fine and the closed one is CERT_REVOCATION_UNREACHABLE
    ok = rmxdiag("cert", good, *args)
    assert problems(ok) == {} and ok.returncode == 0
    assert "CERT_REVOCATION_OK" in {f["code"] for f in findings(ok)}
    ko = rmxdiag("cert", bad, *args)
    assert problems(ko) == {"CERT_REVOCATION_UNREACHABLE": "warning"} and ko.returncode == 1
    # And without --check-revocation nothing is fetched
    assert problems(rmxdiag("cert", bad, *[a for a in args if a != "--check-revocation"])) == {}


def test_sha256_on_firmware_7_is_a_note_and_remediation_names_7x_menus(lab_pki: LabPKI, env: dict[str, Path]) -> None:
    # Given a SHA-256 certificate judged for firmware 7.x
    proc = _judge(env, lab_pki.rmx, "--firmware", "7.x")
    # Then no problem, but a note about the 8.1.4 downgrade
    assert problems(proc) == {} and proc.returncode == 0
    assert "CERT_NOTE_SHA256_FIRMWARE" in {f["code"] for f in findings(proc)}
    # And a flaw's remediation names the 7.x SIP Servers tab rather than the 8.x repository
    nocdp = _judge(env, _flawed(lab_pki, ekus=[pki.SERVER_AUTH]), "--firmware", "7.x", name="eku7.pem")
    steps = " ".join(report(nocdp)["hints"][0]["remediation"])
    assert "SIP Servers tab" in steps and "Certification Repository" not in steps
