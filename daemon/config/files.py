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

from probes.fileio import FileReadError, check_private
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
    """A readable secret file; outside the credentials directory also private, no symlink, <= 1 MiB
    (the one rule, :func:`probes.fileio.check_private`, that the command line applies too)."""
    readable_file(path, fail)
    try:
        check_private(path, MAX_SECRET_BYTES)
    except FileReadError as exc:
        raise fail(str(exc)) from None
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
