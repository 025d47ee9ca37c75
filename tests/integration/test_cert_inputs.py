"""`rmxdiag cert` input forms: every accepted form of the healthy certificate exits 0; every bad
input exits 3 with one line naming the file, no traceback and never the password."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from daemon.lab import pki
from tests.conftest import LabPKI
from tests.support.cert import CANARY, FQDN, assert_one_line_error, password_file, problems, rmxdiag, write


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given a scratch directory for this module."""
    return tmp_path_factory.mktemp("certinputs")


def _ok(d: Path, lab: LabPKI, path: Path, *extra: str | Path) -> None:
    bundle = write(d / "root.pem", lab.root.cert)
    proc = rmxdiag("cert", path, "--ca-bundle", bundle, "--fqdn", FQDN, "--format", "json", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert problems(proc) == {}
    assert CANARY not in proc.stdout + proc.stderr


def test_pem_with_key_and_chain(d: Path, lab_pki: LabPKI) -> None:
    # Given leaf, key and chain as separate PEM files, Then healthy
    paths = lab_pki.rmx.write(d, "rmx")
    _ok(d, lab_pki, paths["cert"], "--key", paths["key"], "--chain", paths["chain"])


def test_der_certificate_with_der_key(d: Path, lab_pki: LabPKI) -> None:
    # Given a DER .cer and a DER PKCS#8 key, Then healthy
    cer = d / "rmx.cer"
    cer.write_bytes(pki.der(lab_pki.rmx.cert))
    key = d / "rmx.key.der"
    key.write_bytes(lab_pki.rmx.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    _ok(d, lab_pki, cer, "--key", key, "--chain", write(d / "c.pem", lab_pki.issuing.cert, lab_pki.root.cert))


def test_encrypted_key_with_password_file(d: Path, lab_pki: LabPKI) -> None:
    # Given an encrypted PEM key and the password file, Then healthy and the password never shows
    key = d / "enc.key"
    key.write_bytes(lab_pki.rmx.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.BestAvailableEncryption(CANARY.encode())))
    _ok(d, lab_pki, write(d / "l.pem", lab_pki.rmx.cert), "--key", key, "--password-file", password_file(d),
        "--chain", write(d / "c.pem", lab_pki.issuing.cert, lab_pki.root.cert))


def test_combined_pem_cert_chain_and_key(d: Path, lab_pki: LabPKI) -> None:
    # Given one PEM holding leaf, intermediate, root and key (order shuffled), Then healthy
    path = write(d / "all.pem", lab_pki.root.cert, lab_pki.rmx.key_pem, lab_pki.rmx.cert, lab_pki.issuing.cert)
    _ok(d, lab_pki, path)


def test_pfx_with_password_file(d: Path, lab_pki: LabPKI) -> None:
    # Given a PFX with its chain and the password in a file, Then healthy
    pfx = d / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(CANARY.encode()))
    _ok(d, lab_pki, pfx, "--password-file", password_file(d))


@pytest.mark.parametrize("encoding", ["der", "pem"])
def test_p7b(d: Path, lab_pki: LabPKI, encoding: str) -> None:
    # Given a PKCS#7 certs-only bundle (DER and PEM), Then healthy
    from cryptography.hazmat.primitives.serialization import pkcs7

    certs = [lab_pki.rmx.cert, *lab_pki.rmx.chain]
    enc = serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM
    path = d / f"rmx-{encoding}.p7b"
    path.write_bytes(pkcs7.serialize_certificates(certs, enc))
    _ok(d, lab_pki, path)


def test_dir7x_layout(d: Path, lab_pki: LabPKI) -> None:
    # Given the 7.x layout with an encrypted pkey.pem and certPassword.txt, Then healthy
    layout = d / "sip-tls"
    layout.mkdir()
    write(layout / "cert.pem", lab_pki.rmx.cert)
    (layout / "pkey.pem").write_bytes(lab_pki.rmx.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(CANARY.encode())))
    write(layout / "rootCA.pem", lab_pki.issuing.cert, lab_pki.root.cert)
    (layout / "certPassword.txt").write_text(CANARY + "\n")
    (layout / "certPassword.txt").chmod(0o600)
    _ok(d, lab_pki, layout)


def _garbage(d: Path, _lab: LabPKI) -> list[str | Path]:
    path = d / "garbage.bin"
    path.write_bytes(bytes((i * 73 + 11) % 256 for i in range(3000)))
    return [path]


def _empty(d: Path, _lab: LabPKI) -> list[str | Path]:
    path = d / "empty.pem"
    path.write_bytes(b"")
    return [path]


def _truncated_pem(d: Path, lab: LabPKI) -> list[str | Path]:
    return [write(d / "trunc.pem", lab.rmx.cert_pem[:400])]


def _corrupt_pem(d: Path, lab: LabPKI) -> list[str | Path]:
    pem = lab.rmx.cert_pem
    return [write(d / "corrupt.pem", pem[:100] + pem[300:])]


def _truncated_der(d: Path, lab: LabPKI) -> list[str | Path]:
    path = d / "trunc.cer"
    path.write_bytes(pki.der(lab.rmx.cert)[:300])
    return [path]


def _oversized(d: Path, _lab: LabPKI) -> list[str | Path]:
    path = d / "huge.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1024 * 1024 + 10))
    return [path]


def _missing(d: Path, _lab: LabPKI) -> list[str | Path]:
    return [d / "no-such-file.pem"]


def _fifo(d: Path, _lab: LabPKI) -> list[str | Path]:
    path = d / "a-fifo"
    if not path.exists():
        os.mkfifo(path)
    return [path]


def _not_layout(d: Path, _lab: LabPKI) -> list[str | Path]:
    path = d / "random-dir"
    path.mkdir(exist_ok=True)
    (path / "cert.pem").write_text("x")
    return [path]


def _missing_password_file(d: Path, lab: LabPKI) -> list[str | Path]:
    pfx = d / "pw.pfx"
    pfx.write_bytes(lab.rmx.pfx(CANARY.encode()))
    return [pfx, "--password-file", d / "no-such-password.txt"]


def _pfx_without_password(d: Path, lab: LabPKI) -> list[str | Path]:
    pfx = d / "nopw.pfx"
    pfx.write_bytes(lab.rmx.pfx(CANARY.encode()))
    return [pfx]


def _bad_key(d: Path, lab: LabPKI) -> list[str | Path]:
    return [write(d / "k.pem", lab.rmx.cert), "--key", write(d / "bad.key", b"-----BEGIN PRIVATE KEY-----\n"
                                                             b"AAAA\n-----END PRIVATE KEY-----\n")]


def _key_wrong_password(d: Path, lab: LabPKI) -> list[str | Path]:
    key = d / "wrongpw.key"
    key.write_bytes(lab.rmx.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(b"another-password")))
    return [write(d / "k2.pem", lab.rmx.cert), "--key", key, "--password-file", password_file(d)]


def _bad_chain(d: Path, lab: LabPKI) -> list[str | Path]:
    garbage = d / "chain-garbage.pem"
    garbage.write_bytes(b"not a bundle at all")
    return [write(d / "k3.pem", lab.rmx.cert), "--chain", garbage]


def _negative_days(d: Path, lab: LabPKI) -> list[str | Path]:
    return [write(d / "k4.pem", lab.rmx.cert), "--expiry-warning-days", "-1"]


BAD_INPUTS: dict[str, tuple[Callable[[Path, LabPKI], list[str | Path]], str]] = {
    "garbage": (_garbage, "not a certificate"),
    "empty": (_empty, "is empty"),
    "truncated-pem": (_truncated_pem, "truncated PEM"),
    "corrupt-pem": (_corrupt_pem, "corrupt"),
    "truncated-der": (_truncated_der, "not a certificate"),
    "oversized": (_oversized, "1 MiB"),
    "missing": (_missing, "does not exist"),
    "fifo": (_fifo, "not a regular file"),
    "not-the-7x-layout": (_not_layout, "not the RMX 7.x layout"),
    "missing-password-file": (_missing_password_file, "no-such-password.txt"),
    "pfx-without-password": (_pfx_without_password, "--password-file"),
    "key-does-not-parse": (_bad_key, "bad.key"),
    "key-wrong-password": (_key_wrong_password, "does not decrypt"),
    "chain-does-not-parse": (_bad_chain, "chain-garbage.pem"),
    "negative-days": (_negative_days, "--expiry-warning-days"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_3(d: Path, lab_pki: LabPKI, case: str) -> None:
    # Given a bad input of this kind
    build, expected = BAD_INPUTS[case]
    args = build(d, lab_pki)
    # When rmxdiag cert reads it (text and JSON)
    for fmt in ("text", "json"):
        proc = rmxdiag("cert", *args, "--format", fmt)
        # Then exit 3, one line naming the problem, no traceback, no password
        assert_one_line_error(proc, expected)
        if fmt == "text":  # the status line a monitoring system shows, the same words as stderr's
            assert proc.stdout.startswith("UNKNOWN: ") and proc.stdout.count("\n") == 1
        else:  # the same error as the one JSON document a script parses
            error = json.loads(proc.stdout)["error"]
            assert error["detail"] == proc.stderr.strip().removeprefix("rmxdiag: error: ") and error["kind"]


def test_bad_input_line_names_the_file(d: Path, lab_pki: LabPKI) -> None:
    # Given garbage, Then the error line starts with the file name
    path = _garbage(d, lab_pki)[0]
    proc = rmxdiag("cert", path)
    assert_one_line_error(proc, f"rmxdiag: error: {path}: ")


def test_truncated_pfx_is_corrupt_not_a_wrong_password(d: Path, lab_pki: LabPKI) -> None:
    """Given a real PFX cut in half (its DER no longer parses)
    When rmxdiag cert opens it with the right password file
    Then it is one line saying the PFX is truncated or corrupt, exit 3, never PFX_BAD_PASSWORD."""
    pfx = d / "half.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(CANARY.encode())[:1500])
    proc = rmxdiag("cert", pfx, "--password-file", password_file(d), "--format", "json")
    assert_one_line_error(proc, f"{pfx}: truncated or corrupt PKCS#12/PFX")
    assert json.loads(proc.stdout)["error"]["kind"] == "bad_input"
    assert CANARY not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_wrong_password_of_a_whole_pfx_is_bad_password(d: Path, lab_pki: LabPKI) -> None:
    """Given a whole PFX and a password file with another password
    When rmxdiag cert opens it
    Then PFX_BAD_PASSWORD (exit 2), never with either password."""
    pfx = d / "whole.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(CANARY.encode()))
    wrong = d / "wrong.pass"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    proc = rmxdiag("cert", pfx, "--password-file", wrong, "--format", "json")
    assert proc.returncode == 2 and problems(proc) == {"PFX_BAD_PASSWORD": "critical"}
    assert CANARY not in proc.stdout + proc.stderr and "not-the-password" not in proc.stdout + proc.stderr
