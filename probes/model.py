"""The shared result model every probe speaks.

A probe gathers facts and returns one :class:`ProbeOutcome` envelope. "The target is unhealthy"
is expressed as :class:`Finding` objects inside an outcome whose status is ``ok`` (the probe did
its job); "the probe could not do its job" is ``status=failed`` with an :class:`ErrorKind`.
JSON and metrics are derived from these types; there is no parallel hierarchy.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from probes.tlswire import Alert


class Severity(enum.StrEnum):
    """How bad a finding or hint is; ordered by :attr:`rank`."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical (matches the Nagios exit code)."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class ProbeStatus(enum.StrEnum):
    """Whether a probe did its job (``ok``), could not (``failed``) or was not asked (``skipped``)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class ErrorKind(enum.StrEnum):
    """Why a probe could not run. Closed set: add a member, never rename one."""

    BAD_INPUT = "bad_input"  # a file or value the user gave is not what it must be
    FILE_UNREADABLE = "file_unreadable"  # missing, permission denied, a directory, ...
    BAD_PASSWORD = "bad_password"  # noqa: S105 (an enum name, not a secret) -- a PKCS#12 could not be opened with the password given
    INSECURE_FILE = "insecure_file"  # key material readable by others, symlinked, oversized
    TOOL_MISSING = "tool_missing"  # tshark (or another helper program) is absent or too old
    PERMISSION = "permission"  # e.g. CAP_NET_RAW missing for a live capture
    DEADLINE = "deadline"  # the probe's overall deadline expired before it could conclude
    UPSTREAM = "upstream"  # a remote API answered with an error or something unparsable
    PROBE_BUG = "probe_bug"  # an unexpected exception inside rmxdiag (traceback is logged)
    INTERRUPTED = "interrupted"  # the user stopped the run (Ctrl-C) before the probe finished
    # rmxdiag (the machine or the run) was too busy to probe in time: no verdict on the target,
    # never a target fault (a probe not started before its deadline, a registrar not given its time)
    OVERLOADED = "overloaded"


class InputError(Exception):
    """A bad input the user must fix; the CLI prints it as one line and exits 3.

    The message must name the file or field and what is wrong, and never contain a secret.
    """

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.BAD_INPUT) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Facts:
    """The typed observations the diagnosis rules act on (never the rendered evidence text).

    ``alert``: the fatal alert of this finding with its sender; ``after_client_cert``: it came
    after the RMX's Certificate flight; ``dropped_after_client_cert``: the Front End reset or
    closed the connection right after that flight, without an alert; ``rmx_issuer`` and
    ``ca_list``: DER ``Name`` bytes of the RMX certificate's issuer and of the CertificateRequest
    CA list (None when not seen; names are compared as bytes, never as RFC 4514 text, whose
    renderings differ for emailAddress or serialNumber); ``ms_diagnostics``: the ids of the SIP
    answer's ms-diagnostics headers; ``no_client_cert``: the probe itself presented no client
    certificate (none was given to it), so a refusal says nothing about the RMX's certificate.
    """

    alert: Alert | None = None
    after_client_cert: bool = False
    dropped_after_client_cert: bool = False
    rmx_issuer: bytes | None = None
    ca_list: tuple[bytes, ...] | None = None
    ms_diagnostics: tuple[int, ...] = ()
    no_client_cert: bool = False


NO_FACTS = Facts()


@dataclass(frozen=True)
class Finding:
    """One observed fact that matters: a stable ``code`` plus evidence a human can check.

    ``code`` is API (a hint code of the catalogue or a probe-specific observation code); ``evidence``
    holds JSON-serialisable values (subjects, serials, alert numbers, header values) for the
    report; ``facts`` holds the same observations typed, for the diagnosis.
    """

    code: str
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    facts: Facts = NO_FACTS

    def to_json(self) -> dict[str, Any]:
        """The report's JSON shape of a finding."""
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ProbeError:
    """Why a probe failed to run: a closed ``kind`` and a one-line human ``detail``."""

    kind: ErrorKind
    detail: str

    def to_json(self) -> dict[str, str]:
        """The report's JSON shape of an error."""
        return {"kind": str(self.kind), "detail": self.detail}


class Metric(enum.StrEnum):
    """The per-probe metric families of the exporter contract (names are API: never rename)."""

    MTLS_PHASE_SECONDS = "rmxdiag_mtls_phase_duration_seconds"  # labels: phase
    TLS_VERSION = "rmxdiag_tls_version_info"  # labels: version
    SIP_STATUS = "rmxdiag_sip_response_status"  # labels: none
    CERT_NOT_AFTER = "rmxdiag_cert_not_after_timestamp_seconds"  # labels: role, position
    ACTIVE_ALARMS = "rmxdiag_rmx_active_alarms"  # labels: category


MAX_CHAIN_POSITION = 15  # chain positions 0..15 bound the label cardinality of CERT_NOT_AFTER


@dataclass(frozen=True)
class Sample:
    """One sample a probe result contributes to ``/metrics``.

    ``labels`` are the family's own labels after ``target``, in the order listed on :class:`Metric`;
    every value comes from a closed enum, the configuration or a bounded integer, never free text.
    """

    metric: Metric
    labels: tuple[str, ...]
    value: float


class ProbeResult(Protocol):
    """A probe-specific result (frozen dataclass) that can show itself in reports and metrics."""

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report (under the probe's ``result`` key)."""
        ...

    def text_lines(self) -> list[str]:
        """Details for the text report, one line per entry, no trailing newline."""
        ...

    def samples(self) -> Iterable[Sample]:
        """The metric samples of this result (typed from its own fields)."""
        ...


class NoSamples:
    """Base of the results that add no metric sample (the CLI helpers' results, the capture's)."""

    def samples(self) -> Iterator[Sample]:
        """No sample."""
        yield from ()


@dataclass(frozen=True)
class ProbeOutcome:
    """The envelope around one probe run.

    ``result`` is None when the probe failed before it gathered anything. ``failure`` is the
    closed (stage, reason) pair of a probe that ran but saw the target fail (e.g. ``("tls",
    "alert_unknown_ca")``); it feeds ``rmxdiag_probe_failure_info``.
    """

    probe: str
    status: ProbeStatus
    duration_seconds: float
    findings: tuple[Finding, ...] = ()
    error: ProbeError | None = None
    result: ProbeResult | None = None
    failure: tuple[str, str] | None = None

    @property
    def healthy(self) -> bool:
        """True when the probe ran and found nothing critical (the ``probe_success`` metric)."""
        return self.status is ProbeStatus.OK and not any(
            f.severity is Severity.CRITICAL for f in self.findings
        )

    def to_json(self) -> dict[str, Any]:
        """The report's JSON shape of one probe run (plus ``result`` and ``failure``)."""
        doc: dict[str, Any] = {
            "probe": self.probe,
            "status": str(self.status),
            "error": self.error.to_json() if self.error else None,
            "duration_seconds": round(self.duration_seconds, 6),
            "findings": [f.to_json() for f in self.findings],
        }
        if self.failure is not None:
            doc["failure"] = {"stage": self.failure[0], "reason": self.failure[1]}
        if self.result is not None:
            doc["result"] = self.result.to_json()
        return doc


def failed(probe: str, kind: ErrorKind, detail: str, duration: float = 0.0) -> ProbeOutcome:
    """Shorthand for the envelope of a probe that could not run."""
    return ProbeOutcome(probe, ProbeStatus.FAILED, duration, error=ProbeError(kind, detail))


def skipped(probe: str) -> ProbeOutcome:
    """Shorthand for a probe that was not configured or not asked for."""
    return ProbeOutcome(probe, ProbeStatus.SKIPPED, 0.0)
