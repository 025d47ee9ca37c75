"""`rmxdiag cert` on certificates as administrators really have them: files saved by Notepad as
"Unicode", a Base-64 body without its BEGIN/END lines, P7Bs and PFXs made by openssl, keys the RMX
cannot use, a CA certificate given by mistake, and a PFX holding several certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.lab import pki
from tests.conftest import LabPKI
from tests.support.cert import FQDN, findings, password_file, problems, report, rmxdiag, write
from tests.support.peers import need


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given a scratch directory for this module."""
    return tmp_path_factory.mktemp("cert-real")


def _judged(proc: subprocess.CompletedProcess[str]) -> None:
    """A judgement, never a crash: exit 0/1/2, no traceback, no internal error, nothing on stderr."""
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize(("name", "encoding", "bom"), [("utf16le", "utf-16-le", b"\xff\xfe"),
                                                       ("utf16be", "utf-16-be", b"\xfe\xff"),
                                                       ("utf8bom", "utf-8", b"\xef\xbb\xbf")])
def test_notepad_unicode_text_files(d: Path, lab_pki: LabPKI, name: str, encoding: str, bom: bytes) -> None:
    """Given the leaf with its chain and its key saved as Notepad saves "Unicode" text (BOM + CRLF), When
    judged, Then they read exactly as the plain PEM files do (healthy, key matches)."""
    def unicode(path: Path, pem: bytes) -> Path:
        path.write_bytes(bom + pem.decode().replace("\n", "\r\n").encode(encoding))
        return path

    cert = unicode(d / f"{name}.cer", pki.pem(lab_pki.rmx.cert) + pki.pem(lab_pki.issuing.cert))
    key = unicode(d / f"{name}.key", lab_pki.rmx.key_pem)
    bundle = unicode(d / f"{name}-root.pem", pki.pem(lab_pki.root.cert))
    proc = rmxdiag("cert", cert, "--key", key, "--ca-bundle", bundle, "--fqdn", FQDN, "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report(proc)["probes"][0]["result"]["private_key"] == "matches"


def test_base64_body_without_begin_end_lines(d: Path, lab_pki: LabPKI) -> None:
    """Given only the Base-64 lines of a certificate (what a CA web page shows), When judged, Then it is read."""
    body = b"".join(pki.pem(lab_pki.rmx.cert).splitlines(keepends=True)[1:-1])
    path = d / "body.txt"
    path.write_bytes(body)
    proc = rmxdiag("cert", path, "--fqdn", FQDN, "--format", "json")
    _judged(proc)
    assert report(proc)["probes"][0]["result"]["certificate"]["subject"] == "CN=rmx.lab.example,O=rmxdiag lab"


def test_p7b_and_pfx_made_by_openssl_print_no_warning(d: Path, lab_pki: LabPKI) -> None:
    """Given a P7B (openssl crl2pkcs7) and a PFX (openssl pkcs12 -export, legacy and default algorithms),
    When judged, Then stderr stays empty (no Python warning naming the install path)."""
    openssl = need("openssl")
    paths = lab_pki.rmx.write(d, "o")
    p7b = d / "chain.p7b"
    subprocess.run([openssl, "crl2pkcs7", "-nocrl", "-certfile", str(paths["cert"]), "-certfile",
                    str(paths["chain"]), "-out", str(p7b)], check=True, timeout=30)
    _judged(rmxdiag("cert", p7b, "--fqdn", FQDN))
    pw = password_file(d, "pfx-pass")
    for legacy in ([], ["-legacy"]):
        pfx = d / f"rmx{'-legacy' if legacy else ''}.pfx"
        done = subprocess.run([openssl, "pkcs12", "-export", *legacy, "-in", str(paths["cert"]), "-inkey",
                               str(paths["key"]), "-certfile", str(paths["chain"]), "-passout", f"file:{pw}",
                               "-out", str(pfx)], capture_output=True, timeout=30, check=False)
        if legacy and done.returncode != 0:
            continue  # OpenSSL 3 without its legacy provider: the default form is still tested
        assert done.returncode == 0, done.stderr
        _judged(rmxdiag("cert", pfx, "--password-file", pw, "--fqdn", FQDN))


def _openssl_cert(d: Path, name: str, *genpkey: str, sign: tuple[str, ...] = ()) -> Path:
    """A self-issued certificate for the RMX FQDN made by openssl with an unusual key type."""
    openssl = need("openssl")
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    if genpkey[:2] == ("-algorithm", "DSA"):  # DSA keys need their domain parameters made first
        params = d / f"{name}.params"
        subprocess.run([openssl, "genpkey", "-genparam", *genpkey, "-out", str(params)], check=True,
                       capture_output=True, timeout=120)
        genpkey = ("-paramfile", str(params))
    subprocess.run([openssl, "genpkey", *genpkey, "-out", str(key)], check=True, capture_output=True, timeout=60)
    subprocess.run([openssl, "req", "-new", "-x509", "-key", str(key), "-subj", f"/CN={FQDN}", "-days", "30",
                    *sign, "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert


@pytest.mark.parametrize(("name", "genpkey", "sign", "code"), [
    ("ed25519", ("-algorithm", "ED25519"), (), "CERT_WEAK_KEY"),
    ("ed448", ("-algorithm", "ED448"), (), "CERT_WEAK_KEY"),
    ("dsa", ("-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:2048"), ("-sha256",), "CERT_WEAK_KEY"),
    ("pss", ("-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"), ("-sha256",), "CERT_SIGNATURE_UNSUPPORTED"),
])
def test_keys_and_signatures_the_rmx_cannot_use(d: Path, name: str, genpkey: tuple[str, ...], sign: tuple[str, ...],
                                                code: str) -> None:
    """Given certificates openssl makes with Ed25519, Ed448, DSA and RSASSA-PSS keys, When judged, Then a
    critical finding says the RMX cannot use them and how to fix it (never 'internal error' or 'corrupt')."""
    proc = rmxdiag("cert", _openssl_cert(d, name, *genpkey, sign=sign), "--fqdn", FQDN, "--format", "json")
    _judged(proc)
    assert problems(proc).get(code) == "critical", problems(proc)
    found = {f["code"]: f for f in findings(proc)}
    assert found[code]["severity"] == "critical"
    hint = next(h for h in report(proc)["hints"] if h["code"] == code)
    assert any("RSA" in step for step in hint["remediation"])


def test_a_ca_certificate_given_as_the_rmx_certificate(d: Path, lab_pki: LabPKI) -> None:
    """Given the issuing CA's certificate pasted instead of the RMX's, and a P7B holding only the chain,
    When judged, Then CERT_IS_CA is the critical root cause (not exit 3, not only 'self-signed')."""
    for path in (write(d / "issuing.pem", lab_pki.issuing.cert),
                 write(d / "chain-only.pem", lab_pki.root.cert, lab_pki.issuing.cert)):
        proc = rmxdiag("cert", path, "--fqdn", FQDN, "--format", "json")
        _judged(proc)
        hints = report(proc)["hints"]
        assert hints[0]["code"] == "CERT_IS_CA" and hints[0]["severity"] == "critical", hints
        assert report(proc)["probes"][0]["result"]["certificate"]["subject"] == \
            "CN=rmxdiag Lab Issuing CA,O=rmxdiag lab"


def test_pfx_with_several_certificates_takes_the_one_matching_the_key(d: Path, lab_pki: LabPKI) -> None:
    """Given a PFX (openssl pkcs12 -export) whose bag lists another end-entity certificate first, then the
    RMX certificate, its CAs, and the RMX key, When judged and extracted, Then the RMX certificate is the
    one matching the key and the other is listed as another end-entity certificate."""
    rmx = pki.issue(pki.name(FQDN), lab_pki.issuing, key=pki.new_key(fresh=True))
    other = pki.issue(pki.name("conference.lab.example"), lab_pki.issuing, key=pki.new_key(fresh=True))
    bag = write(d / "bag.pem", other.cert, rmx.cert, lab_pki.issuing.cert, lab_pki.root.cert)
    key = d / "rmx-only.key"
    key.write_bytes(rmx.key_pem)
    pw = password_file(d, "several")
    pfx = d / "several.pfx"
    subprocess.run([need("openssl"), "pkcs12", "-export", "-in", str(bag), "-inkey", str(key), "-passout",
                    f"file:{pw}", "-out", str(pfx)], check=True, capture_output=True, timeout=30)
    proc = rmxdiag("cert", pfx, "--password-file", pw, "--fqdn", FQDN, "--format", "json")
    _judged(proc)
    result = report(proc)["probes"][0]["result"]
    assert result["certificate"]["subject"] == f"CN={FQDN}" and result["private_key"] == "matches"
    assert result["other_end_entity_certificates"] == ["CN=conference.lab.example"]
    extracted = rmxdiag("cert", "extract", pfx, "--password-file", pw)
    assert extracted.returncode == 0 and extracted.stdout.strip().encode() == pki.pem(rmx.cert).strip()


@pytest.mark.parametrize(("encoding", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-8", b"\xef\xbb\xbf")])
def test_password_file_saved_by_notepad_opens_the_pfx(d: Path, lab_pki: LabPKI, encoding: str, bom: bytes) -> None:
    """Given a PFX and its password saved by Notepad ("Unicode" = UTF-16 LE, or UTF-8 with BOM, and
    CRLF), When judged with that password file, Then the PFX opens (not PFX_BAD_PASSWORD) and its key
    matches: the file holds the same password as the plain one."""
    secret = "Rmx-Pfx-2026!"  # noqa: S105 (a test password)
    pfx = d / f"notepad-{encoding}.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(secret.encode()))
    pw = d / f"notepad-{encoding}.pass"
    pw.write_bytes(bom + (secret + "\r\n").encode(encoding))
    pw.chmod(0o600)
    proc = rmxdiag("cert", pfx, "--password-file", pw, "--fqdn", FQDN, "--format", "json")
    codes = [f["code"] for f in report(proc)["probes"][0]["findings"]]
    assert "PFX_BAD_PASSWORD" not in codes, codes
    assert report(proc)["probes"][0]["result"]["private_key"] == "matches"
