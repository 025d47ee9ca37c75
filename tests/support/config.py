"""Config test helpers: a copy of the documented example with every file it references."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "rmxdiag.example.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "config"

# Files the example references (relative to its directory); secrets get mode 600.
EXAMPLE_FILES = (
    "certs/enterprise-ca.pem", "certs/rmx-mgmt-ca.pem", "certs/rmxdiag-web.pem",
    "alarms/rmx-hq-alerts.txt", "alarms/snmptrapd.log", "alarms/rmx-hq.syslog",
    "captures/rmx-hq-register.pcapng", "certs/rmx-branch/cert.pem", "certs/rmx-branch/rootCA.pem",
)
EXAMPLE_SECRETS = (
    "certs/rmx-hq.pfx", "secrets/rmx-hq.pfx.pass", "secrets/rmx-hq-api.user", "secrets/rmx-hq-api.pass",
    "secrets/rmx-hq.keylog", "secrets/rmxdiag-web.key", "secrets/web-prometheus.pass",
    "secrets/webhook.token", "secrets/notify.token", "certs/rmx-branch/pkey.pem",
    "certs/rmx-branch/certPassword.txt",
)


def touch(path: Path, secret: bool = False, content: bytes = b"x\n") -> Path:
    """Create ``path`` (and its parents) with ``content``; mode 600 for secrets, 644 otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(0o600 if secret else 0o644)
    return path


def materialise_example(directory: Path) -> Path:
    """Copy the example config into ``directory`` and create every file it references."""
    config = directory / "rmxdiag.yaml"
    shutil.copyfile(EXAMPLE, config)
    for name in EXAMPLE_FILES:
        touch(directory / name)
    for name in EXAMPLE_SECRETS:
        touch(directory / name, secret=True)
    return config


def materialise_fixture_files(directory: Path) -> None:
    """The files the invalid-config fixtures reference (paths relative to the fixture's copy)."""
    for name in ("ca.pem", "rmx.pem", "alerts.txt", "capture.pcapng"):
        touch(directory / name)
    for name in ("rmx.pfx", "rmx.pass", "rmx.key", "token", "api.user", "api.pass"):
        touch(directory / name, secret=True)
    touch(directory / "open.key", content=b"k\n")  # 644: group/world-readable key material
    (directory / "adir").mkdir(exist_ok=True)
    link = directory / "link.key"
    if not link.is_symlink():
        link.symlink_to(directory / "rmx.key")
    touch(directory / "big.pass", secret=True, content=b"p" * (1024 * 1024 + 1))
