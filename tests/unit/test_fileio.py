"""The one file reader/writer (probes/fileio.py): bounded reads, typed errors, atomic private writes."""

from __future__ import annotations

import os
import stat
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


def test_create_private_makes_an_owner_only_file_and_keeps_an_existing_one(tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    fileio.create_private(keylog)
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600 and keylog.read_bytes() == b""
    keylog.write_bytes(b"CLIENT_RANDOM ...\n")
    fileio.create_private(keylog)
    assert keylog.read_bytes() == b"CLIENT_RANDOM ...\n"


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
