"""The one file reader/writer (probes/fileio.py): bounded reads, typed errors, atomic private writes."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from probes import fileio
from probes.model import ErrorKind, InputError
from probes.target import SecretFile


def _refused(path: Path, **kwargs: object) -> fileio.FileReadError:
    with pytest.raises(fileio.FileReadError) as caught:
        fileio.read_capped(path, "certificate file", **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_every_refusal_names_the_file_with_a_kind(tmp_path: Path) -> None:
    # Given a missing file, a directory, a FIFO (must not hang), an oversized and an empty file
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * 2049)
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"\n \n")
    cases = {tmp_path / "gone.pem": (ErrorKind.FILE_UNREADABLE, "certificate file does not exist"),
             tmp_path: (ErrorKind.FILE_UNREADABLE, "is a directory, expected a certificate file"),
             fifo: (ErrorKind.BAD_INPUT, "not a regular file (expected a certificate file)"),
             big: (ErrorKind.INSECURE_FILE, "certificate file is 2049 bytes, over the 2 KiB limit"),
             empty: (ErrorKind.BAD_INPUT, "certificate file is empty")}
    for path, (kind, why) in cases.items():
        # When read with a 2 KiB cap
        error = _refused(path, limit=2048)
        # Then one line naming the file and why, with its kind; an InputError and an OSError alike
        assert (str(error), error.kind) == (f"{path}: {why}", kind)
        assert isinstance(error, InputError) and isinstance(error, OSError) and error.strerror == why


def test_secrets_are_the_first_line_of_a_small_regular_file(tmp_path: Path) -> None:
    secret = tmp_path / "password.txt"
    secret.write_bytes(b"s3cret\r\nsecond line\n")
    secret.chmod(0o600)
    assert fileio.read_secret(secret) == b"s3cret"
    secret.write_bytes(b"")
    assert SecretFile(secret).read() == b""  # an empty password is a password (a PFX may have none)
    secret.write_bytes(b"x" * (fileio.MAX_SECRET_BYTES + 1))
    with pytest.raises(fileio.FileReadError, match="over the 4 KiB limit"):
        SecretFile(secret).read()
    # A device that never ends is refused from its type, without reading it
    with pytest.raises(OSError, match="/dev/zero: not a regular file"):
        SecretFile(Path("/dev/zero")).read("token file")


def test_atomic_write_replaces_or_keeps_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pfx"
    # When written, Then the file holds the data with mode 0600
    fileio.write_atomic(target, b"first")
    assert target.read_bytes() == b"first" and stat.S_IMODE(target.stat().st_mode) == 0o600
    # When written again without replace, Then the existing file is kept
    with pytest.raises(FileExistsError):
        fileio.write_atomic(target, b"second", replace=False)
    assert target.read_bytes() == b"first"
    # When replaced, Then the new content is there, and no temporary file is left either way
    fileio.write_atomic(target, b"third")
    assert target.read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pfx"]


def test_secret_files_follow_the_configuration_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a password file readable by others (the umask default), a symlink to a private one, a private one
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    private = tmp_path / "private.pass"
    private.write_bytes(b"pw\n")
    private.chmod(0o600)
    shared = tmp_path / "shared.pass"
    shared.write_bytes(b"pw\n")
    shared.chmod(0o644)
    link = tmp_path / "link.pass"
    link.symlink_to(private)
    # Then the command line's reader refuses what the configuration refuses, with the same words
    assert fileio.read_secret(private) == b"pw"
    with pytest.raises(fileio.FileReadError, match=r"shared\.pass: readable by group or others \(mode 0644\); run "
                       "chmod 600 on it") as caught:
        fileio.read_secret(shared)
    assert caught.value.kind is ErrorKind.INSECURE_FILE
    with pytest.raises(fileio.FileReadError, match="refusing a symlink for secret material"):
        SecretFile(link).read()
    # And inside $CREDENTIALS_DIRECTORY (systemd made those files) the mode is not held against them
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert fileio.read_secret(shared) == b"pw"


def test_a_nul_byte_in_a_secret_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Given a password file holding a NUL byte (or UTF-16 saved without its byte order mark)."""
    for name, content in (("nul.pass", b"sec\0ret\n"), ("utf16-nobom.pass", "pw\n".encode("utf-16-le"))):
        secret = tmp_path / name
        secret.write_bytes(content)
        secret.chmod(0o600)
        # When it is read, Then one refusal naming the file and the NUL byte (OpenSSL would panic on it)
        with pytest.raises(fileio.FileReadError) as caught:
            SecretFile(secret).read()
        assert str(caught.value).startswith(f"{secret}: contains a NUL byte; save it as UTF-8 text")
        assert caught.value.kind is ErrorKind.BAD_INPUT and "\n" not in str(caught.value)
    # And the same password saved by Notepad as "Unicode" (with its byte order mark) is read as UTF-8
    bom = tmp_path / "bom.pass"
    bom.write_bytes("pw\r\n".encode("utf-16"))
    bom.chmod(0o600)
    assert fileio.read_secret(bom) == b"pw"


def test_the_secret_checked_is_the_secret_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a private password file that an attacker swaps for a symlink just before rmxdiag opens it."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secret = tmp_path / "rmx.pass"
    secret.write_bytes(b"good\n")
    secret.chmod(0o600)
    elsewhere = tmp_path / "planted.pass"
    elsewhere.write_bytes(b"planted\n")
    elsewhere.chmod(0o644)
    real_open = os.open

    def swap_then_open(path: object, *args: object, **kwargs: object) -> int:
        if Path(str(path)) == secret and not secret.is_symlink():
            secret.unlink()  # the swap lands right before the open (after any check on the path)
            secret.symlink_to(elsewhere)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fileio.os, "open", swap_then_open)
    # When the secret is read, Then the planted file is never what comes back: the open itself refuses it
    with pytest.raises(fileio.FileReadError, match="refusing a symlink for secret material"):
        fileio.read_secret(secret)


def test_a_secret_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a private (0600) password file owned by another, unprivileged user."""
    if os.geteuid() != 0:
        pytest.skip("giving a file away needs root")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secret = tmp_path / "theirs.pass"
    secret.write_bytes(b"pw\n")
    secret.chmod(0o600)
    os.chown(secret, 65534, 65534)
    # When read, Then one line says whose it is (that user could change the secret rmxdiag uses)
    with pytest.raises(fileio.FileReadError, match=r"theirs\.pass: owned by uid 65534, not by this user") as caught:
        fileio.read_secret(secret)
    assert caught.value.kind is ErrorKind.INSECURE_FILE


def test_a_secret_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Given a FIFO named as password file (nobody ever writes to it)."""
    fifo = tmp_path / "pass.fifo"
    os.mkfifo(fifo, 0o600)
    result: list[BaseException] = []

    def read() -> None:
        try:
            fileio.read_secret(fifo)
        except fileio.FileReadError as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    # When read, Then the refusal comes at once instead of waiting for a writer
    reader.start()
    reader.join(30)
    assert not reader.is_alive() and len(result) == 1 and "not a regular file" in str(result[0])


def test_an_atomic_replace_never_replaces_a_device_or_fifo(tmp_path: Path) -> None:
    """Given a FIFO and a socket where a file is to be replaced."""
    import socket

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "out.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        for path, kind in ((fifo, "a FIFO"), (sock_path, "a socket"), (tmp_path, "a directory")):
            # When written over, Then refused with what it is, and it stays what it was
            before = os.lstat(path)
            with pytest.raises(fileio.FileReadError, match=f"is {kind}, not a regular file"):
                fileio.write_atomic(path, b"data")
            after = os.lstat(path)
            assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo", "out.sock"]
    # And a symlink is replaced itself, never the file it points to
    pointed = tmp_path / "pointed"
    pointed.write_bytes(b"kept")
    (tmp_path / "link").symlink_to(pointed)
    fileio.write_atomic(tmp_path / "link", b"new")
    assert pointed.read_bytes() == b"kept" and (tmp_path / "link").read_bytes() == b"new"
    assert not (tmp_path / "link").is_symlink()


def test_only_a_file_directly_in_the_credentials_directory_is_exempt(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Given $CREDENTIALS_DIRECTORY (reached through a symlinked path), a 0644 credential in it, and a 0644
    password file next to it reached as $CREDENTIALS_DIRECTORY/../x, through a subdirectory and a symlink."""
    creds = tmp_path / "credentials"
    (creds / "sub").mkdir(parents=True)
    (tmp_path / "creds-link").symlink_to(creds)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds-link"))
    for path in (creds / "rmx-password", tmp_path / "outside.pass", creds / "sub" / "nested.pass"):
        path.write_bytes(b"pw\n")
        path.chmod(0o644)
    (creds / "link.pass").symlink_to(tmp_path / "outside.pass")
    # When read, Then systemd's own file is read whatever its mode, by the real or the given directory path
    assert fileio.read_secret(creds / "rmx-password") == b"pw"
    assert fileio.read_secret(tmp_path / "creds-link" / "rmx-password") == b"pw"
    # And a path that leaves the directory (.., a subdirectory) gets the full rule; a symlink is refused anywhere
    refusals = {creds / ".." / "outside.pass": "readable by group or others (mode 0644)",
                tmp_path / "creds-link" / ".." / "outside.pass": "readable by group or others (mode 0644)",
                creds / "sub" / "nested.pass": "readable by group or others (mode 0644)",
                creds / "sub" / ".." / ".." / "outside.pass": "readable by group or others (mode 0644)",
                creds / "link.pass": "refusing a symlink for secret material",
                creds / ".." / "credentials" / "link.pass": "refusing a symlink for secret material"}
    for path, why in refusals.items():
        with pytest.raises(fileio.FileReadError) as caught:
            fileio.read_secret(path)
        assert str(caught.value).startswith(f"{path}: {why}"), caught.value
        assert caught.value.kind is ErrorKind.INSECURE_FILE


def test_a_user_file_is_a_user_file(tmp_path: Path) -> None:
    """Given a FIFO named as the XML API's user file, When read, Then the refusal reads "a user file"."""
    os.mkfifo(tmp_path / "user.fifo", 0o600)
    with pytest.raises(fileio.FileReadError, match=r"not a regular file \(expected a user file\)$"):
        fileio.read_secret(tmp_path / "user.fifo", "user file")
