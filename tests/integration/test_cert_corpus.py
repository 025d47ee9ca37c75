"""`rmxdiag cert` over a public corpus nobody here wrote: the x509/, pkcs12/ and pkcs7/ test vectors of
the ``cryptography`` project (package ``cryptography-vectors``, the test extra).

Every file goes through the CLI entry point in-process (``daemon.cli.main``, ~1,800 files) and a
sample through the real CLI in a subprocess. What a file *is* comes from an oracle independent of
rmxdiag: cryptography's own loaders (PFX passwords as the vectors use: "cryptography", and "password"
for the PKITS ones). Rules:
no traceback, no internal error, no warning on stderr, at most one stderr line; exit 3 only for
files that are not certificates; a judgement (0/1/2) for every certificate. Nothing is excluded:
CRLs, OCSP responses, S/MIME mails, keys, cross-certificate pairs and the vectors that are
malformed on purpose (cryptography refuses them too) count as "not a certificate".
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from daemon.cli import main

vectors = pytest.importorskip("cryptography_vectors", reason="the test extra installs cryptography-vectors")
CORPUS = Path(vectors.__file__).parent
FOLDERS = ("x509", "pkcs12", "pkcs7")
PASSWORDS = {"x509/PKITS_data/pkcs12": b"password"}  # by folder; the others use "cryptography"
ROOT = Path(__file__).resolve().parents[2]


def _files() -> list[Path]:
    return [p for folder in FOLDERS for p in sorted((CORPUS / folder).rglob("*")) if p.is_file()]


def _decodes(certs: list[x509.Certificate]) -> bool:
    for cert in certs:
        _ = cert.extensions, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.serial_number
    return bool(certs)


def is_certificate(path: Path) -> bool:
    """The oracle: cryptography loads at least one certificate from the file, names and extensions included."""
    data = path.read_bytes()
    loaders = (lambda: x509.load_pem_x509_certificates(data), lambda: [x509.load_der_x509_certificate(data)],
               lambda: pkcs7.load_pem_pkcs7_certificates(data), lambda: pkcs7.load_der_pkcs7_certificates(data),
               lambda: _pfx_certs(data, _password(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for load in loaders:
            try:
                if _decodes(list(load())):
                    return True
            except Exception:  # noqa: BLE001,S112 -- the oracle tries every loader; any refusal means "not this form"
                continue
    return False


def _password(path: Path) -> bytes:
    return PASSWORDS.get(path.parent.relative_to(CORPUS).as_posix(), b"cryptography")


def _pfx_certs(data: bytes, password: bytes) -> list[x509.Certificate]:
    for attempt in (password, None):
        try:
            _key, cert, extra = pkcs12.load_key_and_certificates(data, attempt)
        except ValueError:
            continue
        return ([cert] if cert else []) + list(extra)
    return []


def _argv(path: Path, directory: Path) -> list[str]:
    password_file = directory / _password(path).decode()
    password_file.write_bytes(_password(path) + b"\n")
    password_file.chmod(0o600)  # the rule every secret file follows
    return ["cert", str(path), *(["--password-file", str(password_file)] if path.suffix == ".p12" else [])]


def _check(path: Path, code: int, stderr: str, certificate: bool) -> str | None:
    """What is wrong with one run (None: nothing)."""
    if "Traceback" in stderr or "internal error" in stderr:
        return f"crash: {stderr.strip()[:200]}"
    if "Warning" in stderr or "warn(" in stderr or len(stderr.strip().splitlines()) > 1:
        return f"stderr: {stderr.strip()[:200]}"
    if certificate and code not in (0, 1, 2):
        return f"a certificate not judged (exit {code}): {stderr.strip()[:160]}"
    if not certificate and code not in (2, 3):  # a request or an unusable-algorithm certificate is judged (2)
        return f"not a certificate, exit {code}"
    return None


def test_every_vector_is_judged_or_refused_in_one_line(tmp_path: Path) -> None:
    """Given every file of the corpus, When each is given to `rmxdiag cert`, Then certificates are judged,
    other files refused with one line, and nothing crashes or warns."""
    files = _files()
    assert len(files) > 1000  # the whole corpus, not an empty install
    problems: dict[str, str] = {}
    exits: Counter[tuple[bool, int]] = Counter()
    for path in files:
        certificate = is_certificate(path)
        out, err = io.StringIO(), io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            code = main(_argv(path, tmp_path))
        stderr = err.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
        exits[(certificate, code)] += 1
        problem = _check(path, code, stderr, certificate)
        if problem:
            problems[str(path.relative_to(CORPUS))] = problem
    assert problems == {}, f"{len(problems)} files: {dict(list(problems.items())[:15])}"
    judged = sum(n for (cert, code), n in exits.items() if cert)
    assert judged > 900 and exits[(False, 3)] > 500, exits  # measured: 938 judged, 835 refused


# A sample through the real CLI process: the cases the in-process run could hide (a warning printed
# by the interpreter at exit, output buffering), across every kind of file in the corpus.
SAMPLE = ("x509/custom/rsa_pss_cert_no_sig_params.der", "x509/custom/unsupported_subject_public_key_info.pem",
          "x509/custom/dsa_null_alg_params.pem", "x509/PKITS_data/certs/DSAParametersInheritedCACert.crt",
          "x509/ed25519/root-ed25519.pem", "x509/custom/negative_serial.pem", "x509/custom/bad_country.pem",
          "x509/belgian-eid-invalid-visiblestring.pem", "x509/cryptography.io.with_headers.pem",
          "x509/custom/crl_all_reasons.pem", "x509/requests/rsa_sha256.pem", "pkcs7/amazon-roots.p7b",
          "pkcs7/amazon-roots.der", "pkcs7/enveloped.pem", "pkcs12/cert-key-aes256cbc.p12",
          "pkcs12/name-2-3-pwd.p12", "pkcs12/no-cert-key-aes256cbc.p12", "x509/PKITS_data/pkcs12/DSACACert.p12",
          "x509/PKITS_data/crls/GoodCACRL.crl")


@pytest.mark.parametrize("name", SAMPLE)
def test_sample_through_the_real_cli(tmp_path: Path, name: str) -> None:
    """Given a sample of the corpus, When the real CLI judges each file, Then the same rules hold."""
    path = CORPUS / name
    assert path.is_file(), name
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "daemon.cli", *_argv(path, tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert _check(path, proc.returncode, proc.stderr, is_certificate(path)) is None, (proc.returncode, proc.stderr)
