"""`rmxdiag cert csr|extract|pfx|preflight`: the certificate workflow helpers, end to end."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from daemon.lab import pki
from tests.conftest import LabPKI
from tests.support.cert import CANARY, FQDN, assert_one_line_error, password_file, problems, report, rmxdiag, write
from tests.support.peers import need

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given a scratch directory for this module."""
    return tmp_path_factory.mktemp("certtools")


# --- csr ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [
    ("good", {}, [], {}),
    ("good-der", {}, [], {}),
    ("cn", {"fqdn": "other.lab.example"}, [], {"CERT_CN_MISMATCH": "critical"}),
    ("san-without-fqdn", {"sans": ["other.lab.example"]}, [], {"CERT_CN_MISMATCH": "critical"}),
    ("san-with-fqdn", {"sans": [FQDN]}, [], {"CERT_SAN_PRESENT": "warning"}),
    ("san-allowed", {"sans": [FQDN]}, ["--allow-san"], {}),
    ("weak", {"key": "weak"}, [], {"CERT_WEAK_KEY": "warning"}),
    ("sha512", {"hash_name": "sha512"}, [], {"CERT_SIGNATURE_UNSUPPORTED": "warning"}),
    ("md5", {"hash_name": "md5"}, [], {"CERT_SIGNATURE_UNSUPPORTED": "warning"}),
    ("sha1", {"hash_name": "sha1"}, [], {}),
    ("eku-server-only", {"ekus": [pki.SERVER_AUTH]}, [], {"CERT_EKU_MISSING": "critical"}),
    ("eku-both", {"ekus": [pki.SERVER_AUTH, pki.CLIENT_AUTH]}, [], {}),
], ids=lambda case: case[0])
def test_csr_lint(d: Path, case: tuple[str, dict[str, Any], list[str], dict[str, str]]) -> None:
    # Given a request with (at most) one flaw
    label, kwargs, extra, expected = case
    kwargs = dict(kwargs)
    if kwargs.pop("key", None) == "weak":
        kwargs["key"] = pki.new_key(size=1024)
    request = pki.csr(kwargs.pop("fqdn", FQDN), **kwargs)
    path = d / f"{label}.csr"
    path.write_bytes(pki.der(request) if label.endswith("der") else pki.pem(request))
    # When it is linted for the signaling FQDN
    proc = rmxdiag("cert", "csr", path, "--fqdn", FQDN, "--format", "json", *extra)
    # Then exactly the expected codes, with the certificate command's exit convention
    assert problems(proc) == expected, proc.stdout + proc.stderr
    assert proc.returncode == {"": 0, "warning": 1, "critical": 2}[max(expected.values(), default="")]


def test_csr_sha256_on_firmware_7_is_a_note(d: Path) -> None:
    # Given a SHA-256 request for a 7.x RMX, Then no problem but the 8.1.4 note
    path = write(d / "sha256.csr", pki.csr(FQDN))
    proc = rmxdiag("cert", "csr", path, "--fqdn", FQDN, "--firmware", "7.x", "--format", "json")
    assert proc.returncode == 0
    assert any("8.1.4" in n for n in report(proc)["probes"][0]["result"]["notes"])


def test_csr_refuses_a_certificate(d: Path, lab_pki: LabPKI) -> None:
    # Given an issued certificate given to the request linter, Then one line, exit 3
    proc = rmxdiag("cert", "csr", write(d / "issued.pem", lab_pki.rmx.cert))
    assert_one_line_error(proc, "is an issued certificate, not a request")


# --- extract -----------------------------------------------------------------------------------

def _answers(d: Path, lab: LabPKI) -> dict[str, list[str | Path]]:
    cer = d / "answer.cer"
    cer.write_bytes(pki.der(lab.rmx.cert))
    p7_full, p7_noroot = d / "full.p7b", d / "noroot.p7b"
    p7_full.write_bytes(lab.rmx.p7b())
    p7_noroot.write_bytes(pkcs7.serialize_certificates([lab.issuing.cert, lab.rmx.cert],
                                                       serialization.Encoding.DER))
    pfx = d / "answer.pfx"
    pfx.write_bytes(lab.rmx.pfx(CANARY.encode()))
    return {"der": [cer], "pem": [write(d / "answer.pem", lab.rmx.cert)], "p7b-with-root": [p7_full],
            "p7b-without-root": [p7_noroot], "pfx": [pfx, "--password-file", password_file(d)]}


@pytest.mark.parametrize("form", ["der", "pem", "p7b-with-root", "p7b-without-root", "pfx"])
def test_extract_prints_the_leaf(d: Path, lab_pki: LabPKI, form: str) -> None:
    # Given what the CA returned in this form
    args = _answers(d, lab_pki)[form]
    # When the leaf is extracted
    proc = rmxdiag("cert", "extract", *args)
    # Then stdout is exactly the leaf as Base-64 PEM, and stderr says which certificate is which
    assert proc.returncode == 0, proc.stderr
    assert x509.load_pem_x509_certificate(proc.stdout.encode()) == lab_pki.rmx.cert
    assert proc.stdout.count("BEGIN CERTIFICATE") == 1
    assert "leaf: CN=rmx.lab.example" in proc.stderr
    if form.startswith("p7b") or form == "pfx":
        assert "CA (intermediate): CN=rmxdiag Lab Issuing CA" in proc.stderr
    assert ("CA (root): CN=rmxdiag Lab Root CA" in proc.stderr) == (form in ("p7b-with-root", "pfx"))
    assert CANARY not in proc.stdout + proc.stderr


def test_extract_json_and_output_file(d: Path, lab_pki: LabPKI) -> None:
    # Given a P7B, When extracted as JSON and to a file
    p7 = _answers(d, lab_pki)["p7b-with-root"][0]
    doc = report(rmxdiag("cert", "extract", p7, "--format", "json"))
    roles = [c["role"] for c in doc["probes"][0]["result"]["certificates"]]
    assert roles == ["leaf", "CA (intermediate)", "CA (root)"]
    out = d / "leaf-out.pem"
    out.unlink(missing_ok=True)
    assert rmxdiag("cert", "extract", p7, "-o", out).returncode == 0
    assert x509.load_pem_x509_certificate(out.read_bytes()) == lab_pki.rmx.cert
    # Then a second run refuses to overwrite it
    assert_one_line_error(rmxdiag("cert", "extract", p7, "-o", out), "exists")


def test_extract_refuses_the_request(d: Path) -> None:
    # Given the request pasted instead of the CA's answer
    path = write(d / "pasted.csr", pki.csr(FQDN))
    proc = rmxdiag("cert", "extract", path)
    # Then nothing on stdout, the refusal names CERT_IS_REQUEST, exit 2
    assert proc.returncode == 2 and proc.stdout == ""
    assert "CERT_IS_REQUEST" in proc.stderr and "Traceback" not in proc.stderr


def test_extract_refuses_a_ca_certificate(d: Path, lab_pki: LabPKI) -> None:
    """Given the issuing CA's certificate alone (what a wrong export gives)
    When rmxdiag cert extract reads it
    Then no PEM on stdout to paste: CERT_IS_CA, exit 2, as 'rmxdiag cert' says."""
    path = write(d / "issuing-ca.pem", pki.pem(lab_pki.issuing.cert))
    proc = rmxdiag("cert", "extract", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "[CERT_IS_CA]" in proc.stderr.splitlines()[0] and "BEGIN CERTIFICATE" not in proc.stderr


def test_extract_of_many_leaves_names_a_few(d: Path) -> None:
    """Given a PEM of 40 unrelated end-entity certificates
    When rmxdiag cert extract has no --key to pick one
    Then the one error line names the first three and how many more, not all forty."""
    leaves = b"".join(pki.pem(pki.factory_self_signed(f"c{i}.lab.example").cert) for i in range(40))
    path = write(d / "many-leaves.pem", leaves)
    proc = rmxdiag("cert", "extract", path)
    assert_one_line_error(proc, "c0.lab.example", "c2.lab.example", "; and 37 more): give --key")
    assert "c3.lab.example" not in proc.stderr


def test_an_empty_file_name_is_not_the_current_directory(d: Path) -> None:
    """Given '' as the file (an unset shell variable), Then one line saying so, exit 3."""
    assert_one_line_error(rmxdiag("cert", ""), "FILE: an empty file name")


# --- pfx ---------------------------------------------------------------------------------------

def _pfx_args(d: Path, lab: LabPKI, out: Path, *, chain: list[x509.Certificate] | None = None,
              key: bytes | None = None, cert: x509.Certificate | None = None) -> list[str | Path]:
    return ["cert", "pfx", write(d / "issued.pem", cert or lab.rmx.cert),
            "--key", write(d / "issued.key", key or lab.rmx.key_pem),
            "--chain", write(d / "issued-chain.pem", *(chain if chain is not None else lab.rmx.chain)),
            "--password-file", password_file(d), "-o", out, "--fqdn", FQDN]


def test_pfx_round_trip(d: Path, lab_pki: LabPKI) -> None:
    # Given leaf, key and chain, When the PFX is assembled
    out = d / "assembled.pfx"
    out.unlink(missing_ok=True)
    proc = rmxdiag(*_pfx_args(d, lab_pki, out))
    # Then it is written 0600, leaf first and root last
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = proc.stdout
    assert text.index("leaf + key: CN=rmx.lab.example") < text.index("CA: CN=rmxdiag Lab Issuing CA") \
        < text.index("CA: CN=rmxdiag Lab Root CA")
    # And rmxdiag cert judges it healthy against the Front End's root
    judged = rmxdiag("cert", out, "--password-file", password_file(d), "--fqdn", FQDN,
                     "--ca-bundle", write(d / "fe-root.pem", lab_pki.root.cert), "--format", "json")
    assert judged.returncode == 0 and problems(judged) == {}
    # And openssl opens it with the same password, read from the file (never argv)
    openssl = need("openssl")
    opened = subprocess.run([openssl, "pkcs12", "-in", str(out), "-passin", f"file:{password_file(d)}",
                             "-nokeys"], capture_output=True, text=True, timeout=30, check=False)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.count("BEGIN CERTIFICATE") == 3
    # And a second assembly to the same file is refused without --force, allowed with it
    assert_one_line_error(rmxdiag(*_pfx_args(d, lab_pki, out)), "exists", "--force")
    assert rmxdiag(*_pfx_args(d, lab_pki, out), "--force").returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_pfx_missing_intermediate_is_refused_and_named(d: Path, lab_pki: LabPKI) -> None:
    # Given a chain without the issuing CA
    out = d / "no-intermediate.pfx"
    proc = rmxdiag(*_pfx_args(d, lab_pki, out, chain=[lab_pki.root.cert]))
    # Then refused (exit 2, nothing written) with the missing CA named, the verdict first on stdout
    assert proc.returncode == 2 and not out.exists()
    assert proc.stdout.startswith("CRITICAL: ") and "[CERT_CHAIN_INCOMPLETE]" in proc.stdout.splitlines()[0]
    assert "'rmxdiag Lab Issuing CA'" in proc.stdout and proc.stderr == ""


def test_pfx_mismatched_key_is_refused(d: Path, lab_pki: LabPKI) -> None:
    # Given a key that is not the certificate's
    out = d / "wrong-key.pfx"
    other = pki.Issued(lab_pki.rmx.cert, pki.new_key(fresh=True)).key_pem
    proc = rmxdiag(*_pfx_args(d, lab_pki, out, key=other))
    # Then refused with CERT_KEY_MISMATCH, nothing written
    assert proc.returncode == 2 and not out.exists() and "CERT_KEY_MISMATCH" in proc.stdout.splitlines()[0]


def test_pfx_expired_is_refused(d: Path, lab_pki: LabPKI) -> None:
    # Given an expired leaf
    expired = pki.issue(pki.name(FQDN), lab_pki.issuing, not_before=NOW - dt.timedelta(days=30),
                        not_after=NOW - dt.timedelta(days=1), cdp=["http://127.0.0.1:9/lab.crl"])
    out = d / "expired.pfx"
    proc = rmxdiag(*_pfx_args(d, lab_pki, out, cert=expired.cert))
    # Then refused with CERT_EXPIRED, nothing written
    assert proc.returncode == 2 and not out.exists() and "CERT_EXPIRED" in proc.stdout


def test_pfx_needs_output_and_password(d: Path, lab_pki: LabPKI) -> None:
    # Given no -o, Then a one-line usage error
    assert_one_line_error(rmxdiag("cert", "pfx", write(d / "x.pem", lab_pki.rmx.cert)), "-o OUT")


# --- preflight ---------------------------------------------------------------------------------

def _preflight(d: Path, lab: LabPKI, issued: pki.Issued, *extra: str | Path, password: bytes = CANARY.encode(),
               include_chain: bool = True) -> subprocess.CompletedProcess[str]:
    pfx = d / "preflight.pfx"
    pfx.write_bytes(issued.pfx(password, include_chain=include_chain))
    return rmxdiag("cert", "preflight", pfx, "--password-file", password_file(d), "--fqdn", FQDN,
                   "--ca-bundle", write(d / "rmx-trusted.pem", lab.root.cert), *extra)


def _verdict(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(proc.stdout)["targets"][0]["probes"][0]["result"]
    return result


def test_preflight_accepts_the_healthy_pfx(d: Path, lab_pki: LabPKI) -> None:
    # Given the healthy PFX, Then "the RMX will accept this", exit 0
    proc = _preflight(d, lab_pki, lab_pki.rmx)
    lines = proc.stdout.splitlines()
    # (the verdict line first, as every subcommand; the import verdict right after it)
    assert proc.returncode == 0 and lines[0].startswith(f"OK: {d / 'preflight.pfx'}: no problem found | ")
    assert lines[1] == "PRE-FLIGHT: the RMX will accept this"
    assert _verdict(_preflight(d, lab_pki, lab_pki.rmx, "--format", "json"))["verdict"] == "accept"


@pytest.mark.parametrize("case", [
    ("password", "Invalid password.", "PFX_BAD_PASSWORD"),
    ("expired", "Certificate expired.", "CERT_EXPIRED"),
    ("dns-name", "Certificate DNS name does not match RMX (service) DNS name.", "CERT_CN_MISMATCH"),
    ("chain", "Chain is not trusted", "CERT_CHAIN_INCOMPLETE"),
], ids=lambda case: case[0])
def test_preflight_each_import_rejection(d: Path, lab_pki: LabPKI, case: tuple[str, str, str]) -> None:
    # Given a PFX the RMX 8.x import would refuse for this reason
    reason, rmx_message, code = case
    issued, kwargs = lab_pki.rmx, {}
    if reason == "password":
        kwargs = {"password": b"not-the-canary"}
    elif reason == "expired":
        issued = pki.issue(pki.name(FQDN), lab_pki.issuing, not_before=NOW - dt.timedelta(days=30),
                           not_after=NOW - dt.timedelta(days=1), cdp=["http://127.0.0.1:9/lab.crl"])
    elif reason == "dns-name":
        issued = pki.issue(pki.name("rmx-old.lab.example"), lab_pki.issuing, cdp=["http://127.0.0.1:9/lab.crl"])
    else:
        kwargs = {"include_chain": False}
    proc = _preflight(d, lab_pki, issued, "--format", "json", **kwargs)  # type: ignore[arg-type]
    # Then the verdict is reject, with the RMX's own message and the code to fix first
    verdict = _verdict(proc)
    assert proc.returncode == 2 and verdict["verdict"] == "reject"
    assert rmx_message in verdict["import_errors"]
    assert verdict["fix_first"][0].startswith(f"[{code}]")
    # And the text form leads with the verdict naming that code, then the refusal
    text = _preflight(d, lab_pki, issued, **kwargs)  # type: ignore[arg-type]
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"CRITICAL: {d / 'preflight.pfx'}: ") and f"[{code}]" in lines[0]
    assert lines[1].startswith("PRE-FLIGHT: the RMX 8.x import would refuse this")
    assert CANARY not in text.stdout + text.stderr


def test_preflight_includes_every_cert_check(d: Path, lab_pki: LabPKI) -> None:
    # Given a PFX the import accepts but whose certificate lacks clientAuth
    issued = pki.issue(pki.name(FQDN), lab_pki.issuing, ekus=[pki.SERVER_AUTH], cdp=["http://127.0.0.1:9/lab.crl"])
    verdict = _verdict(_preflight(d, lab_pki, issued, "--format", "json"))
    # Then it is still not "accept": the Front End would reject it
    assert verdict["verdict"] == "reject" and verdict["fix_first"][0].startswith("[CERT_EKU_MISSING]")


def test_preflight_needs_fqdn(d: Path, lab_pki: LabPKI) -> None:
    # Given no --fqdn, Then one line, exit 3
    proc = rmxdiag("cert", "preflight", write(d / "y.pem", lab_pki.rmx.cert))
    assert_one_line_error(proc, "--fqdn")


def test_pfx_from_the_cas_p7b_answer_and_an_encrypted_key(d: Path, lab_pki: LabPKI) -> None:
    # Given the CA's P7B answer (leaf + chain) and the request's key, encrypted with its own password
    p7b = d / "ca-answer.p7b"
    p7b.write_bytes(lab_pki.rmx.p7b())
    key = d / "request.key"
    key.write_bytes(lab_pki.rmx.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.BestAvailableEncryption(b"key-pass-2")))
    key_pw = password_file(d, "key-pass-2")
    out = d / "from-p7b.pfx"
    out.unlink(missing_ok=True)
    # When the PFX is assembled with no separate --chain
    proc = rmxdiag("cert", "pfx", p7b, "--key", key, "--key-password-file", key_pw,
                   "--password-file", password_file(d), "-o", out, "--format", "json")
    # Then it is written with the full chain, leaf first, and neither password shows anywhere
    assert proc.returncode == 0, proc.stdout + proc.stderr
    order = report(proc)["probes"][0]["result"]["order"]
    assert [o.split(":")[0] for o in order] == ["leaf + key", "CA", "CA"]
    assert CANARY not in proc.stdout + proc.stderr and "key-pass-2" not in proc.stdout + proc.stderr
