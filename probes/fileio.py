"""The one way rmxdiag opens, reads and writes the files it is given (certificates, keys, secrets,
alarm files, reports): bounded, refusing what is not a regular file, atomic when writing.

Every refusal is a :class:`FileReadError` naming the file and the problem in one line (never a
secret). It is an :class:`~probes.model.InputError` (the CLI exits 3, a probe fails with its
``kind``) and also an ``OSError``, so code that treats an unreadable file as an I/O failure
(the daemon's HTTP authentication, its notifications) handles it like any other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path

from probes.model import ErrorKind, InputError

MAX_FILE_BYTES = 1024 * 1024  # no certificate, key, bundle or PFX an RMX uses comes near 1 MiB
MAX_SECRET_BYTES = 4096  # a password, token or user name is one short line


class FileReadError(InputError, OSError):
    """A file that cannot be used: missing, unreadable, not a regular file, too large or empty."""

    def __init__(self, path: Path, why: str, kind: ErrorKind = ErrorKind.FILE_UNREADABLE) -> None:
        super().__init__(f"{path}: {why}", kind)
        self.strerror = why  # what OSError handlers print


# (device, inode) -> the path it was opened by, for every file read inside :func:`tracking_reads`.
_READ: ContextVar[dict[tuple[int, int], Path] | None] = ContextVar("rmxdiag_files_read", default=None)


@contextlib.contextmanager
def tracking_reads() -> Iterator[Mapping[tuple[int, int], Path]]:
    """Collect the (device, inode) of every file this module opens for reading inside the block.

    A command that writes an output checks it against this (see :func:`probes.fileout.check_output`):
    a file read from inside an input directory is an input too, and only the open knows it was read.
    """
    read: dict[tuple[int, int], Path] = {}
    token = _READ.set(read)
    try:
        yield read
    finally:
        _READ.reset(token)


def files_read() -> Mapping[tuple[int, int], Path]:
    """The files opened so far inside the current :func:`tracking_reads` block (empty outside one)."""
    return dict(_READ.get() or {})


def _note_read(path: Path, info: os.stat_result) -> None:
    read = _READ.get()
    if read is not None:
        read.setdefault((info.st_dev, info.st_ino), path)


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

    def regular(info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            expected = f"expected {_article(what)} {what}"
            if stat.S_ISDIR(info.st_mode):
                raise FileReadError(path, f"is a directory, {expected}")
            # A FIFO or device would hang or feed endless data: never what a file option means.
            raise FileReadError(path, f"not a regular file ({expected})", ErrorKind.BAD_INPUT)

    _note_read(path, checked(fd, regular))
    return fd


def checked(fd: int, check: Callable[[os.stat_result], object]) -> os.stat_result:
    """The status of the descriptor ``fd`` (opened non-blocking) once ``check`` accepted it, and the
    descriptor back in blocking mode; on any refusal ``fd`` is closed and the error propagates.

    Checking the opened descriptor, not the path, is what makes a file option safe: nothing can
    swap the file between the check and the use, and a FIFO opened non-blocking never hangs.
    """
    try:
        info = os.fstat(fd)
        check(info)
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)  # a regular file never blocks; reads through a buffer expect blocking mode
    return info


def read_capped(path: Path, what: str = "file", *, limit: int = MAX_FILE_BYTES, allow_empty: bool = False) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (FileReadError otherwise)."""
    data = _read_fd(open_regular(path, what), path, what, limit)
    if not allow_empty and not data.strip():
        raise FileReadError(path, f"{what} is empty", ErrorKind.BAD_INPUT)
    return data


def _read_fd(fd: int, path: Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes from the open regular file ``fd`` (closed here); FileReadError otherwise."""
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
    return data


def check_private(path: Path, limit: int | None = None) -> None:
    """The one rule for secret files (passwords, tokens, keys), for the CLI and the configuration alike.

    A secret file is never a symlink (it could be re-pointed after the check) and must be a regular
    file; unless it lies directly in ``$CREDENTIALS_DIRECTORY`` (which systemd fills with copies
    readable by the service only) it must also be owned by this user or root, not readable by group
    or others, and at most ``limit`` bytes. A missing file passes: its reader says so.
    """
    try:
        fd = _open_private(path, "secret file", limit)
    except FileNotFoundError:
        return
    os.close(fd)


def _open_private(path: Path, what: str, limit: int | None) -> int:
    """A read-only descriptor on the secret file ``path``, checked on the descriptor itself.

    Opened once, without following a symlink and without blocking (a FIFO), so the file checked is
    the file read: nothing can swap it in between. FileNotFoundError when it does not exist.
    """
    trusted = _in_credentials(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if path.is_symlink():  # a dangling symlink is still a symlink
            raise _symlink(path) from None
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink(path) from None
        raise FileReadError(path, f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    _note_read(path, checked(fd, lambda info: _check_private_info(path, what, info, trusted, limit)))
    return fd


def _symlink(path: Path) -> FileReadError:
    return FileReadError(path, "refusing a symlink for secret material (point at the file itself)",
                         ErrorKind.INSECURE_FILE)


def _check_private_info(path: Path, what: str, info: os.stat_result, trusted: bool, limit: int | None) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise FileReadError(path, f"is a directory, expected {_article(what)} {what}")
    if not stat.S_ISREG(info.st_mode):
        raise FileReadError(path, f"not a regular file (expected {_article(what)} {what})", ErrorKind.BAD_INPUT)
    if trusted:
        return
    if info.st_uid not in (os.geteuid(), 0):
        raise FileReadError(path, f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}) or root; "
                            "a secret file must be yours", ErrorKind.INSECURE_FILE)
    if info.st_mode & 0o044:
        raise FileReadError(path, f"readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                            "run chmod 600 on it", ErrorKind.INSECURE_FILE)
    if limit is not None and info.st_size > limit:
        raise FileReadError(path, f"larger than {_size(limit)}, not a key or password file", ErrorKind.INSECURE_FILE)


def _article(word: str) -> str:
    # "a user file", "a unit", but "an alarm file", "an unreadable file"
    return "an" if word[:1] in "aeiou" and not word.startswith(("us", "uni", "uti")) else "a"


def _in_credentials(path: Path) -> bool:
    """Whether ``path`` names an entry directly in ``$CREDENTIALS_DIRECTORY``, judged on real paths.

    The directory part is resolved (``..``, symlinked directories), the last name is not: a
    ``$CREDENTIALS_DIRECTORY/../x`` is outside, and a symlink is refused wherever it lies.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds:
        return False
    absolute = path.absolute()
    if absolute.name in ("", ".", ".."):
        return False
    return os.path.realpath(absolute.parent) == os.path.realpath(creds)


def read_secret(path: Path, what: str = "password file") -> bytes:
    """The secret in ``path``: its first line without the line ending (the RMX convention).

    The file must pass :func:`check_private` (the same rule the configuration applies), checked
    on the descriptor it is read from. A NUL byte is refused: no password or token holds one, and
    the libraries that take a password as a C string would stop at it (or crash).
    """
    try:
        fd = _open_private(path, what, None)
    except FileNotFoundError:
        raise FileReadError(path, f"{what} does not exist") from None
    data = text_bytes(_read_fd(fd, path, what, MAX_SECRET_BYTES))
    if b"\0" in data:
        raise FileReadError(path, "contains a NUL byte; save it as UTF-8 text (UTF-16 is read only with its "
                            "byte order mark)", ErrorKind.BAD_INPUT)
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


def write_atomic(path: Path | str, data: bytes, *, replace: bool = True, dir_fd: int | None = None) -> None:
    """Write ``data`` to ``path`` (mode 0600) so a reader sees the old file or the new one, never part.

    A temporary file in the same directory is written, fsynced and renamed over ``path`` (over a
    regular file or a symlink only: a device, FIFO, socket or directory there is a FileReadError); with
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
            _refuse_special(path, dir_fd)
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


def _refuse_special(path: Path, dir_fd: int | None) -> None:
    """FileReadError when ``path`` is a device, FIFO, socket or directory: a rename would replace it (/dev/null)."""
    try:
        mode = os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    # A symlink is replaced itself (never what it points to), which keeps the daemon's own names self-healing.
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise FileReadError(path, f"is {file_type(mode)}, not a regular file: only a regular file is replaced",
                            ErrorKind.BAD_INPUT)


def file_type(mode: int) -> str:
    """What a non-regular file is, in words ("a character device")."""
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"
