"""File checks of the config loader: inputs must be readable files, secrets private files.

Kept apart from the YAML walking (``daemon.config.yaml_lines``) because these are the security rules:
key material, passwords and tokens outside ``$CREDENTIALS_DIRECTORY`` must not be readable by
group or others, must not be symlinks (a symlink can be re-pointed at another file after the
check) and must be at most 1 MiB (systemd's credential cap; anything larger is not a secret file).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from probes.model import InputError

MAX_SECRET_BYTES = 1024 * 1024


class ConfigError(InputError):
    """A configuration problem: one line ``file[:line]: key.path: what is wrong``."""


Fail = Callable[[str], ConfigError]  # builds the error for the key being checked


def readable_file(path: Path, fail: Fail) -> None:
    """``path`` exists, is not a directory and this user can read it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except OSError as exc:
        raise fail(f"{path}: cannot access ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise fail(f"{path}: is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would hang or feed endless data later
        raise fail(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise fail(f"{path}: not readable by this user")


def private_file(path: Path, fail: Fail) -> Path:
    """A readable secret file; outside the credentials directory also private, no symlink, <= 1 MiB."""
    readable_file(path, fail)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and _inside(path, Path(creds)):
        return path  # systemd made it, readable by the service only
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise fail(f"{path}: refusing a symlink for secret material (point at the file itself)")
    if info.st_mode & 0o044:
        raise fail(f"{path}: readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                   "run chmod 600 on it")
    if info.st_size > MAX_SECRET_BYTES:
        raise fail(f"{path}: larger than 1 MiB, not a key or password file")
    return path


def credential_file(name: str, fail: Fail) -> Path:
    """``$CREDENTIALS_DIRECTORY/NAME`` (systemd ``LoadCredential=NAME:...``), checked readable."""
    base = os.environ.get("CREDENTIALS_DIRECTORY")
    if not base:
        raise fail(f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set "
                   "(use LoadCredential= in the systemd unit, or give a file path)")
    path = Path(base) / name
    readable_file(path, fail)
    return path


def _inside(path: Path, base: Path) -> bool:
    try:
        path.absolute().relative_to(base.absolute())
    except ValueError:
        return False
    return True
