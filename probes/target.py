"""The typed description of what to probe: one RMX target and the global settings.

The config loader (``daemon.config.load``) builds these from YAML; the CLI builds them from flags;
tests build them directly. Probes read only these types, so they never depend on the loader.
Secrets are referenced by path and read at use; their values never live in these objects.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from probes import redact
from probes.fileio import read_secret


@dataclass(frozen=True)
class SecretFile:
    """A secret (password, token) kept in a file; only the path is ever shown.

    ``secret`` False: a private file whose value is no secret (a user name): it is read under the
    same rules but not redacted from reports, where it would rewrite every word holding it.
    """

    path: Path
    secret: bool = True

    def read(self, what: str = "secret file") -> bytes:
        """The secret: the file's first line, without the line ending (the RMX convention).

        At most 4 KiB of a regular file is read; anything else is a FileReadError naming the file.
        A secret's value is registered for redaction (:mod:`probes.redact`) before it is returned.
        """
        value = read_secret(self.path, what)
        if self.secret:
            redact.remember(value)
        return value

    def __repr__(self) -> str:
        return f"SecretFile({str(self.path)!r})"


@dataclass(frozen=True)
class CertificateSource:
    """Where the RMX certificate comes from.

    ``kind``: ``pfx`` (``path`` + ``password``), ``pem`` (``path`` certificate, ``key``,
    ``chain``), ``dir7x`` (``path`` is a 7.x directory: cert.pem, pkey.pem, rootCA.pem,
    certPassword.txt) or ``fetch`` (the certificate the RMX presents on ``fetch_address``).
    """

    kind: str
    path: Path | None = None
    key: Path | None = None
    chain: Path | None = None
    password: SecretFile | None = None
    fetch_address: str | None = None  # "host:port" of the RMX's own TLS listener


TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")  # canonical spellings, lowest first
TLS_VERSION_FORMS = "1.0, 1.1, 1.2 or 1.3, also written TLSv1.2, TLS1.2 or tls12 (any case)"
# "1.2", "TLSv1.2" (what reports print as the negotiated version), "TLS1.2", "TLS 1.2", "tls12"
# (blackbox_exporter's spelling); the digits after "1" are the minor version.
_TLS_VERSION = re.compile(r"^(?:1\.|tls ?v?1\.?)([0-3])$", re.IGNORECASE)


def tls_version(text: str) -> str:
    """A TLS version as users write it (``1.2``, ``TLSv1.2``, ``TLS1.2``, ``tls12``) -> ``"1.2"``.

    The one parser of the CLI's --tls-min/--tls-max and the configuration's tls_min/tls_max;
    ValueError (one line listing the accepted forms) for anything else.
    """
    found = _TLS_VERSION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a TLS version: write {TLS_VERSION_FORMS}")
    return f"1.{found.group(1)}"


@dataclass(frozen=True)
class Registrar:
    """One Front End registrar to probe: a pool FQDN/IP, or a SIP domain resolved by SRV."""

    host: str | None = None  # pool FQDN or IP
    port: int = 5061
    srv_domain: str | None = None  # resolve _sipinternaltls._tcp.<domain> and probe each member
    sni: str | None = None  # name sent as SNI and verified in the FE certificate (default: host)
    tls_min: str = "1.2"  # "1.0" | "1.1" | "1.2" | "1.3" (see tls_version)
    tls_max: str = "1.3"
    sip_options: bool = True


@dataclass(frozen=True)
class XmlApi:
    """The RMX XML API (HTTP(S) POST of TRANS_MCU transactions).

    The user file is private like the password file, but the user name is not a secret.
    """

    url: str
    user: SecretFile
    password: SecretFile
    ca_bundle: Path | None = None  # None: the system trust store; verification is always on
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.user.secret:  # whoever built it: the user name is never redacted (see SecretFile)
            object.__setattr__(self, "user", SecretFile(self.user.path, secret=False))


@dataclass(frozen=True)
class AlarmSources:
    """Where RMX alarms are read from; all optional."""

    report_files: tuple[Path, ...] = ()
    snmptrapd_log: Path | None = None
    syslog_file: Path | None = None
    xml_api: XmlApi | None = None

    @property
    def configured(self) -> bool:
        """True when at least one source is set."""
        return bool(self.report_files or self.snmptrapd_log or self.syslog_file or self.xml_api)


@dataclass(frozen=True)
class CaptureSources:
    """Captures to inspect: files, a directory of rotated captures, or a bounded live capture."""

    files: tuple[Path, ...] = ()
    directory: Path | None = None
    interface: str | None = None  # live capture only in on-demand / alert-driven runs
    duration: float = 30.0
    port: int = 5061
    max_packets: int = 200_000
    max_bytes: int = 200 * 1024 * 1024
    keylog: Path | None = None

    @property
    def configured(self) -> bool:
        """True when files, a directory or an interface is set."""
        return bool(self.files or self.directory or self.interface)


@dataclass(frozen=True)
class Target:
    """One RMX and everything needed to diagnose its Lync/SfB registration."""

    name: str  # label value: [a-zA-Z0-9_.-], unique
    fqdn: str | None = None  # RMX signaling FQDN (CN of its certificate)
    signaling_ip: str | None = None
    firmware: str = "8.x"  # "7.x" | "8.x"
    certificate: CertificateSource | None = None
    ca_bundle: Path | None = None  # enterprise trust anchors (what the FE and the RMX trust)
    registrars: tuple[Registrar, ...] = ()
    alarms: AlarmSources = field(default_factory=AlarmSources)
    capture: CaptureSources = field(default_factory=CaptureSources)
    interval: float = 60.0
    deadline: float = 10.0  # per probe, seconds
    expiry_warning_days: int = 30
    check_revocation: bool = False
    # Set on a run whose deadline a caller cut (a short /probe scrape timeout): the configured
    # deadline, against which a registrar's silence is judged, so the caller's budget is never blamed on it.
    judged_deadline: float | None = None


@dataclass(frozen=True)
class Settings:
    """Global settings of a run or of the daemon."""

    listen: str = "127.0.0.1:9817"
    interval: float = 60.0
    concurrency: int = 16
    deadline: float = 10.0
    state_dir: Path = Path("/var/lib/rmxdiag")
    expiry_warning_days: int = 30


@dataclass
class ProbeContext:
    """What a probe run gets besides its target: the time, its deadline and a shared cache.

    ``cache`` lives as long as the scheduler (or one CLI run) and lets probes reuse work that
    depends only on unchanged inputs (e.g. a parsed certificate keyed by file path, mtime, size).
    ``on_demand`` is True for CLI runs and alert-triggered runs (live capture allowed).
    """

    now: datetime
    deadline: float  # absolute, time.monotonic() based
    cache: dict[Any, Any] = field(default_factory=dict)
    on_demand: bool = False

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())
