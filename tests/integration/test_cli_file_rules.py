"""What the CLI does with the files it is pointed at: -o never replaces a device or an input,
a secret with a NUL byte or in a non-UTF-8 encoding is one line, a FIFO never hangs a command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LabPKI
from tests.support.cert import CANARY, FQDN, assert_one_line_error, password_file, rmxdiag, write


@pytest.fixture
def issued(tmp_path: Path, lab_pki: LabPKI) -> dict[str, Path]:
    """Given the RMX's issued certificate, its key (0600), its chain and a PFX of them with its password file."""
    paths = lab_pki.rmx.write(tmp_path, "rmx")
    paths["pw"] = password_file(tmp_path)
    paths["pfx"] = tmp_path / "rmx.pfx"
    paths["pfx"].write_bytes(lab_pki.rmx.pfx(paths["pw"].read_text().strip().encode()))
    paths["pfx"].chmod(0o600)
    return paths


def _pfx_args(paths: dict[str, Path], out: Path, password: Path | None = None) -> list[str | Path]:
    return ["cert", "pfx", paths["cert"], "--key", paths["key"], "--chain", paths["chain"],
            "--password-file", password or paths["pw"], "-o", out, "--fqdn", FQDN]


def _device_state(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_mode, info.st_rdev, info.st_ino


def _restore_dev_null(before: tuple[int, int, int]) -> None:
    """Put /dev/null back if a broken rmxdiag replaced it (only root could, and only root can repair it)."""
    if os.geteuid() == 0 and _device_state(Path("/dev/null"))[:2] != before[:2]:
        os.unlink("/dev/null")
        os.mknod("/dev/null", stat.S_IFCHR | 0o666, before[1])
        os.chmod("/dev/null", 0o666)  # noqa: S103 -- /dev/null is world-writable by definition


def test_force_never_replaces_a_device_node(tmp_path: Path, issued: dict[str, Path]) -> None:
    """Given /dev/null (and, as root, a character device node of our own) as -o with --force."""
    targets = [Path("/dev/null")]
    if os.geteuid() == 0:
        own = tmp_path / "null-copy"
        os.mknod(own, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        targets.append(own)
    for target in targets:
        before = _device_state(target)
        try:
            # When the leaf is extracted and a PFX assembled onto it with --force
            for argv in (["cert", "extract", issued["cert"], "-o", target, "--force"],
                         [*_pfx_args(issued, target), "--force"]):
                proc = rmxdiag(*argv)
                # Then one line says it is a device, exit 3, and the node is still the same character device
                assert_one_line_error(proc, str(target), "is a character device, not a regular file")
                assert _device_state(target) == before and stat.S_ISCHR(before[0])
        finally:
            if target == Path("/dev/null"):
                _restore_dev_null(before)


def test_force_never_replaces_an_input(tmp_path: Path, issued: dict[str, Path]) -> None:
    """Given the PFX (the only copy of the key), the key file and a hard link to the PFX as -o with --force."""
    (tmp_path / "same.pfx").hardlink_to(issued["pfx"])
    cases = [(["cert", "extract", issued["pfx"], "--password-file", issued["pw"]], issued["pfx"]),
             (["cert", "extract", issued["pfx"], "--password-file", issued["pw"]], tmp_path / "same.pfx"),
             (_pfx_args(issued, issued["key"])[:-4], issued["key"]),
             (_pfx_args(issued, issued["chain"])[:-4], issued["chain"]),
             (_pfx_args(issued, issued["pw"])[:-4], issued["pw"])]
    for argv, out in cases:
        contents = {p: p.read_bytes() for p in issued.values()}
        # When the output is that file
        proc = rmxdiag(*argv, "-o", out, "--force")
        # Then refused in one line naming both, exit 3, and every input is intact
        assert_one_line_error(proc, str(out), "is the same file as the input")
        assert {p: p.read_bytes() for p in issued.values()} == contents
    # And --force still replaces an earlier output
    out = tmp_path / "leaf.pem"
    out.write_text("earlier\n")
    assert rmxdiag("cert", "extract", issued["cert"], "-o", out, "--force").returncode == 0
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----")


def _dir7x(directory: Path, lab_pki: LabPKI) -> Path:
    """The RMX 7.x layout: cert.pem, pkey.pem encrypted with certPassword.txt, rootCA.pem (all 0600)."""
    from cryptography.hazmat.primitives import serialization

    directory.mkdir()
    write(directory / "cert.pem", lab_pki.rmx.cert)
    (directory / "pkey.pem").write_bytes(lab_pki.rmx.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(CANARY.encode())))
    write(directory / "rootCA.pem", lab_pki.issuing.cert, lab_pki.root.cert)
    (directory / "certPassword.txt").write_text(CANARY + "\n")
    for child in directory.iterdir():
        child.chmod(0o600)
    return directory


def _dir7x_config(directory: Path, d7: Path) -> Path:
    """A configuration with one target whose certificate is the 7.x directory ``d7``."""
    return write(directory / "rmxdiag.yaml", f"targets:\n  - name: rmx\n    certificate:\n      dir7x: {d7}\n".encode())


def test_force_never_replaces_a_file_read_from_an_input_directory(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given an RMX 7.x certificate directory (its pkey.pem the only copy of the key) and a hard link to its key."""
    d7 = _dir7x(tmp_path / "sip-tls", lab_pki)
    (tmp_path / "key-copy.pem").hardlink_to(d7 / "pkey.pem")
    contents = {p: p.read_bytes() for p in d7.iterdir()}
    pw = password_file(tmp_path)
    for argv in (["cert", "extract", d7], ["cert", "pfx", d7, "--password-file", pw, "--fqdn", FQDN]):
        for out in (*sorted(d7.iterdir()), tmp_path / "key-copy.pem"):
            # When a leaf or PFX is written with --force onto a file the command reads from inside the directory
            proc = rmxdiag(*argv, "-o", out, "--force")
            # Then refused in one line naming it, exit 3, and every file of the set is byte-identical
            assert_one_line_error(proc, str(out), "is the same file as the input")
            assert {p: p.read_bytes() for p in d7.iterdir()} == contents
    # And a new file in that directory is still an output like any other
    assert rmxdiag("cert", "extract", d7, "-o", d7 / "leaf.pem").returncode == 0
    assert (d7 / "leaf.pem").read_bytes() == lab_pki.rmx.cert_pem


def test_a_fifo_or_device_is_not_a_regular_file_for_every_input_option(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given a FIFO nobody writes to and /dev/zero, named as --api-ca, --cert, --pfx, or inside a 7.x directory."""
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    user = password_file(tmp_path, "admin")
    api = ["alarms", "--xml-api", "https://127.0.0.1:9/", "--user-file", user, "--password-file", user]
    d7 = _dir7x(tmp_path / "sip-tls", lab_pki)
    (d7 / "rootCA.pem").unlink()
    os.mkfifo(d7 / "rootCA.pem")
    config = _dir7x_config(tmp_path, d7)
    cases: list[tuple[list[str | Path], str, str]] = [
        ([*api, "--api-ca", fifo], str(fifo), "not a regular file (expected a --api-ca file)"),
        ([*api, "--api-ca", "/dev/zero"], "/dev/zero", "not a regular file (expected a --api-ca file)"),
        ([*api, "--api-ca", tmp_path / "gone.pem"], str(tmp_path / "gone.pem"), "--api-ca file does not exist"),
        (["probe", "127.0.0.1:9", "--cert", fifo, "--key", user], str(fifo), "not a regular file (expected a --cert"),
        (["probe", "127.0.0.1:9", "--pfx", "/dev/zero", "--password-file", user], "/dev/zero", "not a regular file"),
        (["cert", d7], str(d7 / "rootCA.pem"), "not a regular file"),
        (["check-config", "-c", config], str(d7 / "rootCA.pem"), "not a regular file"),
    ]
    for argv, name, why in cases:
        # When a command is pointed at it
        proc = rmxdiag(*argv)
        # Then one line names it as not a regular file (it was "file not found", or "missing rootCA.pem"), exit 3
        assert_one_line_error(proc, name, why)
    # And a FIFO as the XML API's user file reads "a user file"
    proc = rmxdiag("alarms", "--xml-api", "https://127.0.0.1:9/", "--user-file", fifo, "--password-file", user)
    assert proc.returncode == 3 and f"{fifo}: not a regular file (expected a user file)" in proc.stdout, proc.stdout


def test_a_symlink_as_the_7x_password_file_is_refused_not_ignored(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given a 7.x directory whose certPassword.txt is a dangling symlink (pkey.pem is encrypted)."""
    d7 = _dir7x(tmp_path / "sip-tls", lab_pki)
    (d7 / "certPassword.txt").unlink()
    (d7 / "certPassword.txt").symlink_to(tmp_path / "nowhere.txt")
    config = _dir7x_config(tmp_path, d7)
    for argv in (["cert", d7], ["check-config", "-c", config]):
        # When it is judged, Then the symlink is named in one line, exit 3 (it was read as "no password")
        assert_one_line_error(rmxdiag(*argv), str(d7 / "certPassword.txt"))


@pytest.mark.parametrize("command", ["cert", "pfx", "check-config"])
def test_a_password_with_a_nul_byte_is_one_line(tmp_path: Path, issued: dict[str, Path], command: str) -> None:
    """Given a password file holding a NUL byte (OpenSSL panicked on it: traceback, exit 1)."""
    nul = tmp_path / "nul.pass"
    nul.write_bytes(b"sec\0ret\n")
    nul.chmod(0o600)
    if command == "cert":
        argv: list[str | Path] = ["cert", issued["pfx"], "--password-file", nul]
    elif command == "pfx":
        argv = _pfx_args(issued, tmp_path / "out.pfx", nul)
    else:
        config = write(tmp_path / "rmxdiag.yaml", f"targets:\n  - name: rmx\n    certificate:\n      pfx: "
                       f"{issued['pfx']}\n      password_file: {nul}\n".encode())
        argv = ["check-config", "-c", config]
    # When it is used, Then one line naming the file and the NUL byte, exit 3, nothing written
    assert_one_line_error(rmxdiag(*argv), str(nul), "contains a NUL byte")
    assert not (tmp_path / "out.pfx").exists()


def test_a_password_the_pfx_cannot_hold_is_one_line(tmp_path: Path, issued: dict[str, Path]) -> None:
    """Given a password file saved as Latin-1 (ANSI) and one saved by Notepad as "Unicode"."""
    latin1 = tmp_path / "latin1.pass"
    latin1.write_bytes("päss\n".encode("latin-1"))
    latin1.chmod(0o600)
    notepad = tmp_path / "unicode.pass"
    notepad.write_bytes("päss\r\n".encode("utf-16"))
    notepad.chmod(0o600)
    # When a PFX is assembled with the Latin-1 one, Then one line naming the file and the encoding, exit 3
    assert_one_line_error(rmxdiag(*_pfx_args(issued, tmp_path / "a.pfx", latin1)), str(latin1), "not UTF-8 text")
    assert not (tmp_path / "a.pfx").exists()
    # And the Notepad one protects the PFX with the password it holds
    out = tmp_path / "b.pfx"
    assert rmxdiag(*_pfx_args(issued, out, notepad)).returncode in (0, 1)
    from cryptography.hazmat.primitives.serialization import pkcs12

    assert pkcs12.load_key_and_certificates(out.read_bytes(), "päss".encode())[1] is not None


def _fifo_commands(tmp_path: Path, fifo: Path) -> dict[str, list[str | Path]]:
    return {"pcap": ["pcap", fifo, "--timeout", "5"], "check-config": ["check-config", "-c", fifo],
            "cert": ["cert", fifo], "pfx": ["cert", "pfx", fifo, "--password-file", password_file(tmp_path),
                                            "-o", tmp_path / "out.pfx"]}


@pytest.mark.parametrize("command", ["pcap", "check-config", "cert", "pfx"])
def test_a_fifo_never_hangs_a_command(tmp_path: Path, command: str) -> None:
    """Given a FIFO nobody writes to, named as capture, configuration or certificate."""
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    # (the reference: how long the same command takes to refuse a missing file on this machine)
    argv = _fifo_commands(tmp_path, fifo)[command]
    started = time.monotonic()
    missing = rmxdiag(*[tmp_path / "missing" if a == fifo else a for a in argv])
    reference = time.monotonic() - started
    assert missing.returncode == 3, missing.stderr
    # When the command is pointed at it
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=max(30.0, 10 * reference), check=False)
    # Then it refuses it in one line at once (it used to wait for a writer forever), exit 3
    assert_one_line_error(proc, str(fifo), "not a regular file")
    assert time.monotonic() - started < max(30.0, 10 * reference)
