"""The files rmxdiag creates for the user: ``-o`` outputs (``cert extract``, ``cert pfx``) and TLS key logs.

Both are secret-bearing or replace what is there, so each has one rule, checked before any work
is done and again on what is actually opened: an output replaces a regular file only (with
``--force``) and never one of its own inputs; a key log is created new, or appended to only when
it is already the user's private key log. Refusals are :class:`~probes.fileio.FileReadError`
(one line naming the file; the CLI exits 3), and nothing is touched.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from probes.fileio import FileReadError, file_type, files_read, write_atomic
from probes.model import ErrorKind


def check_output(path: Path, force: bool, inputs: Iterable[Path | None] = ()) -> None:
    """Refuse ``path`` as an output unless it is new, or a regular file with ``force`` that is no input.

    An input is any of ``inputs`` and any file read so far under :func:`probes.fileio.tracking_reads`
    (the files found inside an input directory among them), compared by device and inode.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileReadError(path, f"cannot write: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        # --force means "replace my earlier output", never "replace /dev/null for every process".
        raise FileReadError(path, f"is {file_type(info.st_mode)}, not a regular file: -o writes regular files "
                            "only (nothing was changed)", ErrorKind.BAD_INPUT)
    if not force:
        raise FileReadError(path, "exists; not overwritten (use --force)", ErrorKind.BAD_INPUT)
    sources = dict(files_read())
    for given in inputs:
        if given is None:
            continue
        try:
            source = os.stat(given)
        except OSError:
            continue  # an input that cannot be read is refused by its reader
        sources.setdefault((source.st_dev, source.st_ino), given)
    given = sources.get((info.st_dev, info.st_ino))
    if given is not None:
        raise FileReadError(path, f"is the same file as the input {given}; not overwritten (choose another -o)",
                            ErrorKind.BAD_INPUT)


def write_output(path: Path, data: bytes, force: bool, inputs: Iterable[Path | None] = ()) -> None:
    """Write an ``-o`` output (mode 0600, atomically) under :func:`check_output`'s rule."""
    inputs = tuple(inputs)
    check_output(path, force, inputs)
    try:
        # Without --force the file is linked into place: one that appeared meanwhile is kept.
        write_atomic(path, data, replace=force)
    except FileExistsError:
        raise FileReadError(path, "exists; not overwritten (use --force)", ErrorKind.BAD_INPUT) from None
    except FileReadError:
        raise
    except OSError as exc:
        raise FileReadError(path, f"cannot write: {exc.strerror or type(exc).__name__}") from None


_KEYLOG_LABELS = (b"#", b"CLIENT_RANDOM ", b"CLIENT_HANDSHAKE_TRAFFIC_SECRET ", b"SERVER_HANDSHAKE_TRAFFIC_SECRET ",
                  b"CLIENT_TRAFFIC_SECRET_0 ", b"SERVER_TRAFFIC_SECRET_0 ", b"EXPORTER_SECRET ",
                  b"CLIENT_EARLY_TRAFFIC_SECRET ", b"EARLY_EXPORTER_SECRET ", b"RSA ")


def open_keylog(path: Path) -> int:
    """An append descriptor on the TLS key log ``path``: a new file of mode 0600, or an earlier key log.

    A key log decrypts every session written to it, so it is created without following a
    symlink and readable by its owner only (OpenSSL and tcpdump would use the umask, usually 0644).
    An existing file is appended to only when it is a regular file of this user, mode 0600 (or
    stricter), that is empty or already a key log (Wireshark users keep one); anything else, a
    certificate named by a typo say, is refused with a FileReadError and left untouched.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if _is_device(path):
            # Opening a device can act on it (a tape rewinds, a modem hangs up): refuse it unopened.
            raise FileReadError(path, "not a regular file (expected a key log; give a new file name)",
                                ErrorKind.BAD_INPUT) from None
    except OSError as exc:
        raise FileReadError(path, f"cannot create the key log: {exc.strerror or type(exc).__name__}") from None
    else:
        os.set_blocking(fd, True)
        return fd
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileReadError(path, "refusing a symlink as key log (give a new file name)",
                                ErrorKind.INSECURE_FILE) from None
        raise FileReadError(path, f"cannot write the key log: {exc.strerror or type(exc).__name__}") from None
    try:
        _check_keylog(path, fd)
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def _is_device(path: Path) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False  # gone again: the open says what it is
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _check_keylog(path: Path, fd: int) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileReadError(path, "not a regular file (expected a key log; give a new file name)", ErrorKind.BAD_INPUT)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise FileReadError(path, f"exists with owner uid {info.st_uid} and mode {stat.S_IMODE(info.st_mode):04o}: "
                            "an existing key log must be yours with mode 0600 (give a new file name, or "
                            "chmod 600 it)", ErrorKind.INSECURE_FILE)
    head = os.pread(fd, 64, 0).lstrip(b"\r\n")
    if head and not head.startswith(_KEYLOG_LABELS):
        raise FileReadError(path, "exists and is not a TLS key log; not appended to (give a new file name)",
                            ErrorKind.BAD_INPUT)
