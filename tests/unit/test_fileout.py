"""The files rmxdiag creates for the user (probes/fileout.py): -o outputs and TLS key logs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probes import fileout
from probes.fileio import FileReadError
from probes.model import ErrorKind


def test_an_output_replaces_only_a_regular_file_that_is_no_input(tmp_path: Path) -> None:
    """Given an input, a hard link to it, a symlink to it, a FIFO and an earlier output."""
    given = tmp_path / "rmx.pfx"
    given.write_bytes(b"the only copy of the key")
    (tmp_path / "hard.pfx").hardlink_to(given)
    (tmp_path / "soft.pfx").symlink_to(given)
    os.mkfifo(tmp_path / "out.fifo")
    earlier = tmp_path / "leaf.pem"
    earlier.write_bytes(b"old")
    refusals = {"rmx.pfx": "is the same file as the input", "hard.pfx": "is the same file as the input",
                "soft.pfx": "is a symlink, not a regular file", "out.fifo": "is a FIFO, not a regular file",
                ".": "is a directory, not a regular file"}
    for name, why in refusals.items():
        # When written with --force, Then refused with one line, and nothing there changed
        before = os.lstat(tmp_path / name)
        with pytest.raises(FileReadError) as caught:
            fileout.write_output(tmp_path / name, b"new", True, [None, given])
        assert why in str(caught.value) and caught.value.kind is ErrorKind.BAD_INPUT, name
        assert os.lstat(tmp_path / name).st_ino == before.st_ino
    assert given.read_bytes() == b"the only copy of the key"
    # And without --force an existing output is kept; with it, replaced (0600)
    with pytest.raises(FileReadError, match=r"leaf\.pem: exists; not overwritten \(use --force\)"):
        fileout.write_output(earlier, b"new", False, [given])
    fileout.write_output(earlier, b"new", True, [given])
    assert earlier.read_bytes() == b"new" and stat.S_IMODE(earlier.stat().st_mode) == 0o600


def _append(path: Path, line: bytes) -> None:
    fd = fileout.open_keylog(path)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def test_a_key_log_is_new_and_private_or_the_users_own_key_log(tmp_path: Path) -> None:
    """Given no key log yet."""
    keylog = tmp_path / "keys.log"
    # When one is opened, Then it is created 0600 whatever the umask
    old = os.umask(0o022)
    try:
        _append(keylog, b"CLIENT_RANDOM aa bb\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    # And the user's own private key log is appended to (one key log across sessions)
    _append(keylog, b"CLIENT_RANDOM cc dd\n")
    assert keylog.read_bytes() == b"CLIENT_RANDOM aa bb\nCLIENT_RANDOM cc dd\n"


def test_a_key_log_never_lands_in_a_file_it_does_not_own(tmp_path: Path) -> None:
    """Given a certificate (mode 0644), a private key (0600), a symlink to a file, a FIFO, a group-readable log."""
    cert = tmp_path / "rmx.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    cert.chmod(0o644)
    key = tmp_path / "rmx.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"x\n")
    victim.chmod(0o600)
    (tmp_path / "link.log").symlink_to(victim)
    (tmp_path / "dangling.log").symlink_to(tmp_path / "nowhere.log")
    os.mkfifo(tmp_path / "keys.fifo", 0o600)
    shared = tmp_path / "shared.log"
    shared.write_bytes(b"CLIENT_RANDOM aa bb\n")
    shared.chmod(0o640)
    refusals = {cert: "mode 0644", key: "is not a TLS key log", tmp_path / "link.log": "refusing a symlink",
                tmp_path / "dangling.log": "refusing a symlink", tmp_path / "keys.fifo": "not a regular file",
                shared: "mode 0640"}
    refusals[Path("/dev/null")] = "not a regular file"
    if os.geteuid() == 0:  # a private key log of another user: that user reads what rmxdiag appends
        theirs = tmp_path / "theirs.log"
        theirs.write_bytes(b"CLIENT_RANDOM aa bb\n")
        theirs.chmod(0o600)
        os.chown(theirs, 65534, 65534)
        refusals[theirs] = "owner uid 65534"
    for path, why in refusals.items():
        before = [(p.name, p.lstat().st_size, p.lstat().st_mode) for p in sorted(tmp_path.iterdir())]
        # When named as key log, Then one line refuses it, and no file changed or appeared
        with pytest.raises(FileReadError, match=why) as caught:
            fileout.open_keylog(path)
        assert str(caught.value).startswith(f"{path}: "), caught.value
        assert os.lstat("/dev/null").st_rdev == os.makedev(1, 3)
        assert [(p.name, p.lstat().st_size, p.lstat().st_mode) for p in sorted(tmp_path.iterdir())] == before


def test_an_output_is_never_a_file_the_command_read(tmp_path: Path) -> None:
    """Given a certificate and a password file read inside a tracked command (as from inside a 7.x directory)."""
    from probes import fileio

    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    password = tmp_path / "certPassword.txt"
    password.write_bytes(b"pw\n")
    password.chmod(0o600)
    (tmp_path / "hard.pem").hardlink_to(cert)
    with fileio.tracking_reads():
        fileio.read_capped(cert, "certificate file")
        fileio.read_secret(password)
        for out, read in ((cert, cert), (tmp_path / "hard.pem", cert), (password, password)):
            # When -o names one of them (or a hard link to it) with --force, though no input list names it
            with pytest.raises(FileReadError) as caught:
                fileout.write_output(out, b"leaf", True, [])
            # Then refused in one line naming the file read, and it is unchanged
            assert str(caught.value) == (f"{out}: is the same file as the input {read}; not overwritten "
                                         "(choose another -o)") and caught.value.kind is ErrorKind.BAD_INPUT
    assert cert.read_bytes() == b"-----BEGIN CERTIFICATE-----\n" and password.read_bytes() == b"pw\n"
    # And outside the command nothing is remembered: --force replaces the file
    fileout.write_output(cert, b"leaf", True, [])
    assert cert.read_bytes() == b"leaf"


_CLIENT_RANDOM = b"CLIENT_RANDOM " + b"1f" * 32 + b" " + b"a0" * 48 + b"\n"
_TLS13 = b"".join(label + b" " + b"1f" * 32 + b" " + b"a0" * 32 + b"\r\n" for label in (
    b"SERVER_HANDSHAKE_TRAFFIC_SECRET", b"CLIENT_HANDSHAKE_TRAFFIC_SECRET", b"EXPORTER_SECRET",
    b"SERVER_TRAFFIC_SECRET_0", b"CLIENT_TRAFFIC_SECRET_0", b"CLIENT_EARLY_TRAFFIC_SECRET", b"EARLY_EXPORTER_SECRET"))
_PYTHON_HEADER = b"# TLS secrets log file, generated by OpenSSL / Python\n"


@pytest.mark.parametrize(("content", "why"), [
    (b"# ssh client config\nHost bastion\n  User ops\n", "line 1 is not an NSS key log line"),
    (b"#!/bin/sh\nexec true\n", "line 1 is not an NSS key log line"),
    (b"# TLS secrets log file, generated by OpenSSL / Python\nHost bastion\n", "line 2 is not an NSS key log line"),
    (_PYTHON_HEADER + _CLIENT_RANDOM + b"PasswordAuthentication no\n", "line 3 is not an NSS key log line"),
    (b"client_random 1f a0\n", "line 1 is not an NSS key log line"),
    (b"CLIENT_RANDOM secret words\n", "line 1 is not an NSS key log line"),
    (_PYTHON_HEADER + _CLIENT_RANDOM[:-1], "its last line has no line break at its end"),
    (_PYTHON_HEADER + _CLIENT_RANDOM * 3000 + b"export TOKEN=x\n", "a line near its end is not an NSS key log line"),
    (b"x" * (3 * 64 * 1024) + b"\n", "a line longer than 64 KiB"),
])
def test_an_existing_key_log_is_every_line_a_key_log_line(tmp_path: Path, content: bytes, why: str) -> None:
    """Given the user's own 0600 file that is not (all) a key log: a comment is no proof, the first byte '#' neither."""
    path = tmp_path / "keys.log"
    path.write_bytes(content)
    path.chmod(0o600)
    # When named as key log, Then one line says which line is not a key log line, and nothing is appended
    with pytest.raises(FileReadError) as caught:
        fileout.open_keylog(path)
    assert str(caught.value) == (f"{path}: exists and is not a TLS key log ({why}); not appended to "
                                 "(give a new file name)") and caught.value.kind is ErrorKind.BAD_INPUT
    assert path.read_bytes() == content


@pytest.mark.parametrize("content", [
    b"", _PYTHON_HEADER, _PYTHON_HEADER + _CLIENT_RANDOM + _TLS13,
    b"# SSL/TLS secrets log file, generated by NSS\n" + _CLIENT_RANDOM + b"\n" + _CLIENT_RANDOM,
    b"RSA " + b"0e" * 8 + b" " + b"33" * 48 + b"\n", _PYTHON_HEADER + _CLIENT_RANDOM * 3000,
])
def test_a_key_log_of_openssl_nss_or_wireshark_is_appended_to(tmp_path: Path, content: bytes) -> None:
    """Given the user's own 0600 key log as OpenSSL (Python), NSS or Wireshark wrote it, small or over the bound."""
    path = tmp_path / "keys.log"
    path.write_bytes(content)
    path.chmod(0o600)
    # When named as key log, Then the new secrets are appended after what was there
    _append(path, _CLIENT_RANDOM)
    assert path.read_bytes() == content + _CLIENT_RANDOM
