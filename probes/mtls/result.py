"""Typed results of the MTLS probe, their findings, JSON and the text handshake ladder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from probes.model import MAX_CHAIN_POSITION, Facts, Finding, Metric, Sample, Severity
from probes.mtls import outcome as oc
from probes.mtls.outcome import Reason, Stage
from probes.mtls.tls import CertInfo
from probes.sip import MsDiagnostic
from probes.tlswire import ALERTS, Alert, Sender

# Outcomes about the Front End's certificate (its chain is their evidence) and about the RMX's
# certificate (the CertificateRequest CA list is theirs).
_FE_CERT_CODES = frozenset({"REGISTRAR_CERT_UNTRUSTED", "REGISTRAR_CERT_NAME_MISMATCH", "REGISTRAR_CERT_EXPIRED",
                            "TLS_LOCAL_POLICY"})
_CLIENT_CERT_CODES = frozenset({"CLIENT_CERT_REJECTED", "CLIENT_CERT_UNKNOWN_CA"})
_DROPPED = frozenset({Reason.RESET_AFTER_CLIENT_CERT, Reason.CLOSED_AFTER_CLIENT_CERT})
_SIP_CODES = frozenset({"SIP_NOT_TRUSTED", "SIP_NO_RESPONSE", "SIP_ERROR_RESPONSE"})
# What a probe without trust anchors, or without a client certificate, did not check (and what checks it).
_UNCHECKED_FE = {"unchecked": "the Front End chain against the RMX's trust store", "option": "--rmx-trust F",
                 "config_key": "ca_bundle"}
_UNCHECKED_CLIENT = {"unchecked": "the RMX's own certificate", "option": "--pfx F --password-file F, or --cert/--key",
                     "config_key": "certificate"}

# What ssl.SSLSocket.version() can return: the closed set of rmxdiag_tls_version_info{version}.
TLS_VERSION_LABELS = frozenset({"SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"})

_REASON_TEXT: dict[Reason, str] = {
    Reason.DNS_FAILURE: "the name does not resolve",
    Reason.DNS_TIMEOUT: "the resolver did not answer before the deadline",
    Reason.REFUSED: "the connection was refused (RST to SYN)",
    Reason.TIMEOUT: "no answer before the deadline",
    Reason.OVERLOADED: "not finished before the deadline because rmxdiag was too busy (no verdict on the registrar)",
    Reason.UNREACHABLE: "no route to the registrar",
    Reason.NO_TLS_ANSWER: "TCP connected but not one TLS byte came back",
    Reason.STALLED: "the Front End started the handshake, then stalled",
    Reason.NOT_TLS: "the port answered with something that is not TLS",
    Reason.CLOSED: "the connection was closed without an alert",
    Reason.RESET: "the connection was reset without an alert",
    Reason.CLOSED_AFTER_CLIENT_CERT: "the Front End closed the connection right after our certificate",
    Reason.RESET_AFTER_CLIENT_CERT: "the Front End reset the connection right after our certificate",
    Reason.SERVER_CERT_UNTRUSTED: "we cannot verify the Front End chain (untrusted root / missing intermediate)",
    Reason.SERVER_CERT_NAME_MISMATCH: "the Front End certificate does not carry the name we connect to",
    Reason.SERVER_CERT_EXPIRED: "the Front End certificate has expired",
    Reason.SERVER_CERT_NOT_YET_VALID: "the Front End certificate is not yet valid",
    Reason.SERVER_CERT_INVALID: "the Front End certificate failed verification",
    Reason.LOCAL_VERSION_REFUSED: "OUR TLS range refused the version the Front End chose",
    Reason.LOCAL_POLICY_REFUSED: "OUR security policy refused the Front End's key, signature or cipher",
    Reason.HANDSHAKE_ERROR: "the handshake failed",
    Reason.NOT_TRUSTED: "the Front End refuses the RMX as a trusted server",
    Reason.ERROR_RESPONSE: "the registrar answered with a SIP error",
    Reason.BAD_RESPONSE: "the registrar's answer is not a valid SIP response",
}


@dataclass(frozen=True)
class RegistrarResult:
    """The probe of one registrar address.

    ``registrar``: "host:port" as configured (an SRV member for SIP domains); ``address``: the
    "ip:port" connected to (None before connect); ``stage``/``reason``: where and why it stopped
    (reason ``ok`` = healthy); ``phases``: seconds per phase reached (resolve, connect, tls,
    sip); ``tls_version``/``cipher``: None unless the handshake completed; ``alert``: the fatal
    alert number with ``alert_direction`` from_fe/from_rmx (None: no alert); ``verify_code``: our
    X509_V_ERR code when we rejected the FE chain; ``client_cert_requested``: None when the
    handshake did not get that far; ``ca_names``: the CertificateRequest CA list (RFC 4514; None
    when no request was seen); ``rmx_issuer_listed``: None when there is no list, no client
    certificate, or the list is empty ("any CA"); ``rmx_issuer_der``/``ca_ders``: the same two
names as DER (what the diagnosis compares); ``server_chain``: the chain the FE presented,
    also when verification failed; ``sip_*``: None without a SIP answer; ``ladder``: the handshake
    as (direction, message) steps.
    """

    registrar: str
    address: str | None
    sni: str | None
    stage: Stage
    reason: Reason
    phases: tuple[tuple[str, float], ...]
    tls_version: str | None
    cipher: str | None
    alert: int | None
    alert_direction: Sender | None
    after_handshake: bool
    verify_code: int | None
    verify_message: str | None
    ssl_reason: str | None
    errno: int | None
    client_cert_requested: bool | None
    client_cert_sent: bool
    client_cert_empty: bool
    ca_names: tuple[str, ...] | None
    rmx_issuer: str | None
    rmx_issuer_listed: bool | None
    server_chain: tuple[CertInfo, ...]
    sip_status: int | None
    sip_reason_phrase: str | None
    sip_server: str | None
    ms_diagnostics: tuple[MsDiagnostic, ...]
    ladder: tuple[tuple[str, str], ...]
    detail: str = ""
    rmx_issuer_der: bytes | None = None
    ca_ders: tuple[bytes, ...] | None = None
    fe_chain_checked: bool = True  # False: no trust anchors were given, the chain was only recorded
    rmx_subject: str | None = None  # the subject of the client certificate presented (None: none)

    @property
    def ok(self) -> bool:
        """True when every stage asked for succeeded."""
        return self.reason is Reason.OK

    @property
    def hint(self) -> oc.HintRef | None:
        """The catalogue hint of this outcome (None when healthy)."""
        return oc.hint_for(self.stage, self.reason, alert=self.alert if self.alert_direction is Sender.FE else None,
                           after_client_cert=self.client_cert_sent)

    @property
    def typed_alert(self) -> Alert | None:
        """The fatal alert of this outcome with its sender (None: no alert)."""
        if self.alert is None or self.alert_direction is None:
            return None
        return Alert(self.alert, self.alert_direction)

    def facts(self) -> Facts:
        """The typed facts the diagnosis acts on (the evidence shows the same to a reader)."""
        return Facts(alert=self.typed_alert, after_client_cert=self.client_cert_sent,
                     dropped_after_client_cert=self.reason in _DROPPED and self.alert_direction is not Sender.FE,
                     rmx_issuer=self.rmx_issuer_der, ca_list=self.ca_ders,
                     ms_diagnostics=tuple(d.id for d in self.ms_diagnostics if d.parsed),
                     no_client_cert=self.client_cert_empty)

    def describe(self) -> str:
        """One human sentence for the outcome."""
        if self.ok:
            return f"{self.registrar}: MTLS ({self.tls_version}) " + (
                f"and OPTIONS ({self.sip_status} {self.sip_reason_phrase}) succeeded" if self.sip_status
                else "handshake succeeded")
        if self.alert is not None:
            who = "the Front End sent" if self.alert_direction == "from_fe" else "we sent"
            when = " after the handshake (TLS 1.3 late rejection)" if self.after_handshake else (
                " after our certificate" if self.client_cert_sent else "")
            text = f"{who} alert {self.alert} {ALERTS.get(self.alert, '?')}{when}"
        elif self.sip_status is not None:
            text = f"SIP {self.sip_status} {self.sip_reason_phrase or ''}".rstrip()
            if self.ms_diagnostics:
                text += "; ms-diagnostics: " + " | ".join(d.raw for d in self.ms_diagnostics)
        else:
            text = _REASON_TEXT.get(self.reason, str(self.reason))
            if self.verify_message:
                text += f" ({self.verify_message})"
        if self.client_cert_empty and self.hint is not None and self.hint.code in _CLIENT_CERT_CODES:
            text += ("; no client certificate was presented (none was given to this test), and a Front End "
                     "that refuses a peer without one is doing MTLS as it should: this says nothing about the "
                     "RMX's own certificate")
        return f"{self.registrar}: {self.stage} failed: {text}" + (f" [{self.detail}]" if self.detail else "")

    def evidence(self) -> dict[str, Any]:
        """The evidence keys of the findings conventions (JSON-serialisable)."""
        ev: dict[str, Any] = {"registrar": self.registrar, "stage": str(self.stage), "reason": str(self.reason)}
        typed = self.typed_alert
        if typed is not None:
            ev.update(typed.evidence(), after_handshake=self.after_handshake)
        optional = {"tls_version": self.tls_version, "sip_status": self.sip_status, "sni": self.sni,
                    "verify_code": self.verify_code, "verify_message": self.verify_message,
                    "ssl_reason": self.ssl_reason, "errno": self.errno, "sip_server": self.sip_server}
        ev.update({k: v for k, v in optional.items() if v is not None})
        if self.ms_diagnostics:
            ev["ms_diagnostics"] = [d.to_json() for d in self.ms_diagnostics]
        hint = self.hint
        code = hint.code if hint else ""
        # Only the facts that bear on this outcome: the FE leaf for FE-certificate outcomes, the
        # CertificateRequest CA list for client-certificate rejections (the full result has both).
        if self.server_chain and (code in _FE_CERT_CODES or hint is None):
            leaf = self.server_chain[0]
            ev.update(subject=leaf.subject, issuer=leaf.issuer, serial=leaf.serial,
                      not_before=leaf.not_before, not_after=leaf.not_after, sans=list(leaf.sans))
        if code in _SIP_CODES and self.rmx_subject:
            ev["rmx_subject"] = self.rmx_subject
        if code in _CLIENT_CERT_CODES:
            if self.client_cert_empty:
                ev.update(_UNCHECKED_CLIENT)
            if self.ca_names is not None:
                ev["ca_names"] = list(self.ca_names)
            if self.rmx_issuer is not None:
                ev["rmx_issuer"] = self.rmx_issuer
            ev["client_cert_empty"] = self.client_cert_empty
        return ev

    def findings(self) -> list[Finding]:
        """The findings of this registrar: its failure hint, or MTLS_OK, plus MTLS observations.

        None for an overloaded probe: what it saw before time ran out says nothing about the registrar.
        """
        if self.reason is Reason.OVERLOADED:
            return []
        out = []
        hint = self.hint
        facts = self.facts()
        if hint is not None:
            # The Front End refusing a peer that presented no certificate is MTLS working: worth
            # knowing, not a failure of the RMX (whose certificate was not tested).
            severity = Severity.WARNING if self.client_cert_empty and hint.code in _CLIENT_CERT_CODES \
                else hint.severity
            out.append(Finding(hint.code, severity, self.describe(), self.evidence(), facts))
        else:
            out.append(Finding("MTLS_OK", Severity.INFO, self.describe(), self.evidence(), facts))
        if not self.fe_chain_checked and self.server_chain:
            leaf = self.server_chain[0]
            out.append(Finding("MTLS_FE_CHAIN_UNCHECKED", Severity.INFO,
                               f"{self.registrar}: the Front End's chain ({leaf.subject}, SHA-1 {leaf.sha1}, "
                               f"{len(self.server_chain)} certificate(s)) was recorded but not checked against "
                               "the RMX's trust store: give the CAs the RMX trusts (--rmx-trust, or ca_bundle in the "
                               "configuration)",
                               {"registrar": self.registrar, "subject": leaf.subject, "sha1": leaf.sha1,
                                "chain": [c.subject for c in self.server_chain], **_UNCHECKED_FE}))
        if self.client_cert_requested is False:
            out.append(Finding("CLIENT_CERT_NOT_REQUESTED", Severity.WARNING,
                               f"{self.registrar}: the server sent no CertificateRequest (not MTLS)",
                               {"registrar": self.registrar, "tls_version": self.tls_version}))
        if self.rmx_issuer_listed is False:
            out.append(Finding("CAPTURE_TRUNCATED_CA_LIST", Severity.WARNING,
                               f"{self.registrar}: the CertificateRequest CA list does not name the RMX issuer",
                               {"registrar": self.registrar, "ca_names": list(self.ca_names or ()),
                                "rmx_issuer": self.rmx_issuer},
                               Facts(rmx_issuer=self.rmx_issuer_der, ca_list=self.ca_ders)))
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything above, for the JSON report."""
        return {
            "registrar": self.registrar, "address": self.address, "sni": self.sni,
            "stage": str(self.stage), "reason": str(self.reason),
            "hint": self.hint.code if self.hint else None,
            "phases": {k: round(v, 6) for k, v in self.phases}, "tls_version": self.tls_version,
            "cipher": self.cipher, "alert": self.alert, "alert_direction": self.alert_direction,
            "after_handshake": self.after_handshake, "verify_code": self.verify_code,
            "verify_message": self.verify_message, "ssl_reason": self.ssl_reason, "errno": self.errno,
            "client_cert_requested": self.client_cert_requested, "client_cert_sent": self.client_cert_sent,
            "client_cert_empty": self.client_cert_empty,
            "ca_names": list(self.ca_names) if self.ca_names is not None else None,
            "rmx_issuer": self.rmx_issuer, "rmx_issuer_listed": self.rmx_issuer_listed,
            "server_chain": [c.to_json() for c in self.server_chain],
            "sip_status": self.sip_status, "sip_reason": self.sip_reason_phrase, "sip_server": self.sip_server,
            "ms_diagnostics": [d.to_json() for d in self.ms_diagnostics],
            "ladder": [{"direction": d, "message": m} for d, m in self.ladder], "detail": self.detail,
            "fe_chain_checked": self.fe_chain_checked,
        }

    def text_lines(self) -> list[str]:
        """The handshake ladder (consecutive messages of one side on one line) and where it stopped."""
        lines = [f"{self.registrar}" + (f" ({self.address})" if self.address else "") + ":"]
        for direction, group in _grouped(self.ladder):
            arrow = "RMX ──▶ FE " if direction == "from_rmx" else "RMX ◀── FE "
            lines.append(f"  {arrow} {', '.join(group)}")
        if self.sip_status is not None:
            lines.append("  RMX ──▶ FE  OPTIONS")
            lines.append(f"  RMX ◀── FE  SIP {self.sip_status} {self.sip_reason_phrase or ''}".rstrip())
        mark = "✓" if self.ok else "✗"
        lines.append(f"  {mark} {self.stage}: {self.reason}  "
                     + " ".join(f"{k}={v * 1000:.1f}ms" for k, v in self.phases))
        for cert in self.server_chain:
            lines.append(f"  FE cert[{cert.position}] {cert.subject} (issuer {cert.issuer}; until {cert.not_after}; "
                         f"SHA-1 {cert.sha1 or '?'})")
        if self.server_chain and not self.fe_chain_checked:
            lines.append("  FE chain: not checked against the RMX's trust store (give --rmx-trust, or ca_bundle)")
        if self.ca_names:
            lines.append(f"  CertificateRequest CAs: {'; '.join(self.ca_names)}")
        return lines


def _grouped(ladder: tuple[tuple[str, str], ...]) -> list[tuple[str, list[str]]]:
    groups: list[tuple[str, list[str]]] = []
    for direction, message in ladder:
        if groups and groups[-1][0] == direction:
            groups[-1][1].append(message)
        else:
            groups.append((direction, [message]))
    return groups


@dataclass(frozen=True)
class MtlsResult:
    """The MTLS probe of one target: every registrar probed, and the client chain presented.

    :meth:`samples` describes :attr:`primary` (the first failing registrar, else the first one):
    its phase durations, negotiated TLS version and SIP status, and the notAfter of both chains
    with role ``client`` (our chain) and ``server`` (the primary registrar's presented chain).
    """

    registrars: tuple[RegistrarResult, ...]
    client_chain: tuple[CertInfo, ...]

    @property
    def primary(self) -> RegistrarResult | None:
        """The registrar the single-valued metrics describe."""
        failing = [r for r in self.registrars if not r.ok]
        return failing[0] if failing else (self.registrars[0] if self.registrars else None)

    @property
    def phases(self) -> dict[str, float]:
        """Seconds per phase of the primary registrar."""
        return dict(self.primary.phases) if self.primary else {}

    @property
    def tls_version(self) -> str | None:
        """Negotiated TLS version of the primary registrar."""
        return self.primary.tls_version if self.primary else None

    @property
    def sip_status(self) -> int | None:
        """SIP status of the primary registrar's OPTIONS answer."""
        return self.primary.sip_status if self.primary else None

    @property
    def cert_not_after(self) -> tuple[tuple[str, int, float], ...]:
        """(role, position, not_after unix time) for both chains."""
        rows = [("client", c.position, c.not_after_ts) for c in self.client_chain]
        if self.primary:
            rows += [("server", c.position, c.not_after_ts) for c in self.primary.server_chain]
        return tuple(rows)

    def samples(self) -> Iterator[Sample]:
        """Phase durations, TLS version, SIP status and chain expiry of the primary registrar."""
        phases = self.phases
        for stage in Stage:  # the phase label is always a Stage value
            seconds = phases.get(str(stage))
            if seconds is not None and seconds >= 0:
                yield Sample(Metric.MTLS_PHASE_SECONDS, (str(stage),), seconds)
        if self.tls_version in TLS_VERSION_LABELS:
            yield Sample(Metric.TLS_VERSION, (str(self.tls_version),), 1.0)
        if self.sip_status is not None:
            yield Sample(Metric.SIP_STATUS, (), float(self.sip_status))
        for role, position, stamp in self.cert_not_after:
            if position <= MAX_CHAIN_POSITION and stamp > 0:  # 0: a certificate that did not parse
                yield Sample(Metric.CERT_NOT_AFTER, (role, str(position)), stamp)

    def to_json(self) -> dict[str, Any]:
        """The JSON report's ``result`` of the mtls probe."""
        return {"registrars": [r.to_json() for r in self.registrars],
                "client_chain": [c.to_json() for c in self.client_chain],
                "phases": {k: round(v, 6) for k, v in self.phases.items()},
                "tls_version": self.tls_version, "sip_status": self.sip_status}

    def text_lines(self) -> list[str]:
        """The ladder of every registrar."""
        lines: list[str] = []
        for registrar in self.registrars:
            lines += registrar.text_lines()
        return lines
