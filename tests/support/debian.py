"""The Debian packages the tests need (.ci/debian-packages.txt): which are missing, and installing them.

Standard library only: ``make test`` runs ``python3 tests/support/debian.py ensure`` with the
system Python before the virtual environment exists. ``ensure`` is a fast no-op when every package
is installed; otherwise it installs the missing ones non-interactively when it runs as root (or
with passwordless sudo), and without those rights prints the exact install command and lets the
tests run (the tests of a missing peer skip; in CI they fail, and so does ``ensure``).
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LIST = Path(__file__).resolve().parents[2] / ".ci" / "debian-packages.txt"
# tshark asks whether non-root users may capture; the answer is given up front so no install blocks.
DEBCONF = "wireshark-common wireshark-common/install-setuid boolean false\n"
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Package:
    """One Debian package and the peers (programs, or file globs) the tests find in it."""

    name: str
    peers: tuple[str, ...]


def in_ci() -> bool:
    """True when ``CI`` holds a true value (``CI=false``, ``CI=0`` or empty are not CI)."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE


def packages(path: Path = LIST) -> list[Package]:
    """The packages of the list, in its order (comments and blank lines skipped)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            found.append(Package(fields[0], tuple(fields[1:])))
    return found


def package_of(peer: str, path: Path = LIST) -> str:
    """The package that provides ``peer``; a peer missing from the list is a defect of the list."""
    for package in packages(path):
        if peer in package.peers:
            return package.name
    raise LookupError(f"{peer} is not listed in {path}: add it with its Debian package")


def find(peer: str) -> str | None:
    """The path of a peer: a program on PATH or in /usr/sbin, /sbin, or the first match of a glob."""
    if peer.startswith("/"):
        return next((p for p in sorted(glob.glob(peer)) if os.path.isfile(p)), None)
    return shutil.which(peer) or next(
        (str(p) for p in (Path("/usr/sbin") / peer, Path("/sbin") / peer) if p.is_file()), None)


def missing(names: list[str]) -> list[str]:
    """The packages among ``names`` that dpkg does not list as installed (none off Debian)."""
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        return []
    # An unknown package makes dpkg-query exit 1 with a note on stderr: only stdout is read.
    out = subprocess.run([dpkg_query, "-W", "-f", "${Package} ${db:Status-Status}\n", *names],
                         capture_output=True, text=True, check=False).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [name for name in names if name not in installed]


def install_command(names: list[str]) -> str:
    """The command a user with sudo runs to install ``names`` without a question."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return ("sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y --no-install-recommends {quoted}")


def _privilege() -> list[str] | None:
    """The prefix that runs a command as root: none for root, ``sudo -n`` if allowed, else None."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [sudo, "-n"]
    return None


def install(names: list[str], prefix: list[str]) -> int:
    """Install ``names`` with apt-get, non-interactively; apt-get's exit code."""
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    code = subprocess.run([*prefix, "debconf-set-selections"], input=DEBCONF, text=True, check=False).returncode
    if code:
        return code
    steps = [[*prefix, *env, "apt-get", "update", "-q"],
             [*prefix, *env, "apt-get", "install", "-y", "-q", "--no-install-recommends", *names]]
    for argv in steps:
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode
        if code:
            return code
    return 0


def ensure() -> int:
    """Install the missing packages if allowed, else name them; non-zero only on failure or in CI."""
    absent = missing([p.name for p in packages()])
    if not absent:
        return 0
    prefix = _privilege()
    if prefix is not None:
        print(f"rmxdiag tests: installing the missing Debian packages: {' '.join(absent)}", flush=True)
        return install(absent, prefix)
    print(f"rmxdiag tests: missing Debian packages: {' '.join(absent)}\n"
          f"  their tests are skipped (they fail in CI); install them with:\n  {install_command(absent)}",
          file=sys.stderr, flush=True)
    return 1 if in_ci() else 0


if __name__ == "__main__":
    if sys.argv[1:] != ["ensure"]:
        sys.exit("usage: python3 tests/support/debian.py ensure")
    sys.exit(ensure())
