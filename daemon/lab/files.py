"""Where the lab writes: a directory it made (or an empty one), files created fresh, no symlink followed.

``--workdir DIR`` may name a directory that already holds the user's own files (the real
``rmx-cert.pem`` and ``rmx-key.pem`` they collected, say). The lab only writes into a directory
that is new, empty, or marked by an earlier lab run, and it replaces a name by unlinking it and
creating a new file (``O_EXCL | O_NOFOLLOW``): a symlink planted there is removed, never written
through, and a private key never inherits a world-readable mode.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from probes.model import ErrorKind, InputError

MARKER = ".rmxdiag-lab"  # written into every lab directory; lets a later run reuse it


def _unusable(path: Path, why: str) -> InputError:
    return InputError(f"{path}: cannot be used as the lab directory ({why})", ErrorKind.FILE_UNREADABLE)


def prepare(requested: Path) -> None:
    """Make ``requested`` the lab's directory, or raise InputError when it holds something else."""
    try:
        if requested.is_symlink():
            raise _unusable(requested, "it is a symbolic link; give the directory itself")
        requested.mkdir(parents=True, exist_ok=True)
        entries = [e.name for e in os.scandir(requested)]
        if entries and MARKER not in entries:
            raise _unusable(requested, "it is not empty and not a directory of an earlier lab run; "
                                       "give a new or empty directory, the lab writes rmx-cert.pem, rmx-key.pem, …")
        write_new(requested / MARKER, b"written by rmxdiag lab: its files here are replaced by the next run\n")
    except OSError as exc:
        raise _unusable(requested, exc.strerror or type(exc).__name__) from None


def fresh(path: Path) -> None:
    """Remove whatever file or symlink is at ``path`` (a directory there makes the create fail)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        path.unlink()


def open_new(path: Path, private: bool = False) -> int:
    """A new file at ``path`` (0600 when ``private``, else 0644), replacing a file or symlink there."""
    fresh(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600 if private else 0o644)


def write_new(path: Path, data: bytes, private: bool = False) -> Path:
    """Write ``data`` to a new file at ``path`` (see :func:`open_new`); return ``path``."""
    with os.fdopen(open_new(path, private), "wb") as out:
        out.write(data)
    return path
