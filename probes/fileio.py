"""The one way rmxdiag opens, reads and writes the files it is given (certificates, keys, secrets,
alarm files, reports): bounded, refusing what is not a regular file, atomic when writing.

Every refusal is a :class:`FileReadError` naming the file and the problem in one line (never a
secret). It is an :class:`~probes.model.InputError` (the CLI exits 3, a probe fails with its
``kind``) and also an ``OSError``, so code that treats an unreadable file as an I/O failure
(the daemon's HTTP authentication, its notifications) handles it like any other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from probes.model import ErrorKind, InputError

MAX_FILE_BYTES = 1024 * 1024  # no certificate, key, bundle or PFX an RMX uses comes near 1 MiB
MAX_SECRET_BYTES = 4096  # a password, token or user name is one short line


class FileReadError(InputError, OSError):
    """A file that cannot be used: missing, unreadable, not a regular file, too large or empty."""

    def __init__(self, path: Path, why: str, kind: ErrorKind = ErrorKind.FILE_UNREADABLE) -> None:
        super().__init__(f"{path}: {why}", kind)
        self.strerror = why  # what OSError handlers print


def _size(limit: int) -> str:
    return f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def open_regular(path: Path, what: str = "file") -> int:
    """A read-only descriptor on the regular file ``path`` (FileReadError otherwise).

    Opened non-blocking and checked on the descriptor: a FIFO or device is refused without
    hanging, and nothing can swap the file between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileReadError(path, f"{what} does not exist") from None
    except OSError as exc:
        raise FileReadError(path, f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        expected = f"expected {'an' if what[:1] in 'aeiou' else 'a'} {what}"
        if stat.S_ISDIR(mode):
            raise FileReadError(path, f"is a directory, {expected}")
        # A FIFO or device would hang or feed endless data: never what a file option means.
        raise FileReadError(path, f"not a regular file ({expected})", ErrorKind.BAD_INPUT)
    return fd


def read_capped(path: Path, what: str = "file", *, limit: int = MAX_FILE_BYTES, allow_empty: bool = False) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (FileReadError otherwise)."""
    fd = open_regular(path, what)
    try:
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise FileReadError(path, f"{what} is {size} bytes, over the {_size(limit)} limit",
                                    ErrorKind.INSECURE_FILE)
            data = handle.read(limit + 1)  # the file may grow between fstat and read
    except OSError as exc:
        if isinstance(exc, FileReadError):
            raise
        raise FileReadError(path, f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise FileReadError(path, f"{what} is over the {_size(limit)} limit", ErrorKind.INSECURE_FILE)
    if not allow_empty and not data.strip():
        raise FileReadError(path, f"{what} is empty", ErrorKind.BAD_INPUT)
    return data


def check_private(path: Path, limit: int | None = None) -> None:
    """The one rule for secret files (passwords, tokens, keys), for the CLI and the configuration alike.

    Outside ``$CREDENTIALS_DIRECTORY`` (which systemd makes readable by the service only) a secret
    file must not be a symlink (it could be re-pointed after the check), must not be readable by
    group or others, and must be at most ``limit`` bytes. A missing file passes: its reader says so.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and _inside(path, Path(creds)):
        return
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileReadError(path, f"cannot access ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISLNK(info.st_mode):
        raise FileReadError(path, "refusing a symlink for secret material (point at the file itself)",
                            ErrorKind.INSECURE_FILE)
    if not stat.S_ISREG(info.st_mode):
        return  # a directory, FIFO or device: the reader refuses it for what it is
    if info.st_mode & 0o044:
        raise FileReadError(path, f"readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                            "run chmod 600 on it", ErrorKind.INSECURE_FILE)
    if limit is not None and info.st_size > limit:
        raise FileReadError(path, f"larger than {_size(limit)}, not a key or password file", ErrorKind.INSECURE_FILE)


def _inside(path: Path, base: Path) -> bool:
    try:
        path.absolute().relative_to(base.absolute())
    except ValueError:
        return False
    return True


def read_secret(path: Path, what: str = "password file") -> bytes:
    """The secret in ``path``: its first line without the line ending (the RMX convention).

    The file must pass :func:`check_private` (the same rule the configuration applies).
    """
    check_private(path)
    data = text_bytes(read_capped(path, what, limit=MAX_SECRET_BYTES, allow_empty=True))
    return data.splitlines()[0] if data else b""


# Byte order marks of text files saved as "Unicode" (UTF-16) or "UTF-8" by Windows Notepad.
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def text_bytes(data: bytes) -> bytes:
    """A text file saved as "Unicode" (UTF-16 with BOM) or UTF-8 with BOM as plain UTF-8 bytes; other data as is.

    Certificates, keys and password files copied from Windows arrive this way; a password file saved
    by Notepad as "Unicode" holds the password the RMX import was given, in UTF-16.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec).encode("utf-8")
            except UnicodeDecodeError:
                return data
    return data


def create_private(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600) unless it exists; the caller then appends.

    For files that decrypt traffic (TLS key logs): OpenSSL and tcpdump would create them with
    the umask, usually 0644.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))


def write_atomic(path: Path | str, data: bytes, *, replace: bool = True, dir_fd: int | None = None) -> None:
    """Write ``data`` to ``path`` (mode 0600) so a reader sees the old file or the new one, never part.

    A temporary file in the same directory is written, fsynced and renamed over ``path``; with
    ``replace=False`` it is linked instead, so a file that exists (or appeared meanwhile) is kept
    and FileExistsError raised. With ``dir_fd``, ``path`` is a bare name inside that open
    directory (the daemon's state directory, opened once without following symlinks), and the
    directory is fsynced too. OSError on failure; no temporary file is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            # link() fails when the name exists: an existing file is never silently replaced.
            os.link(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        if dir_fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
