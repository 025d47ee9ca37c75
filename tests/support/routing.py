"""Every finding a probe can emit, built by the probe's own code, and where the diagnosis reports it.

:data:`MTLS_CASES` is each outcome the mtls probe can end in, with the alert (number and sender)
it carries as measured against real peers (tests/integration/test_diagnosis_real_peers.py
produces each one and checks it against this table). :func:`variants` turns every case, and every
capture, certificate and alarm observation, into the finding the probe itself builds:
:class:`probes.mtls.result.RegistrarResult` for the mtls probe, :class:`CaptureAnalyzer` fed
with packet events for the capture. :func:`routing_markdown` is the README's routing table:
what each finding is reported as when it is alone, and what it may be folded into.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from daemon.diagnosis.catalogue import CATALOGUE, FOLDS_INTO, GENERIC_SYMPTOMS, hint_code
from daemon.diagnosis.diagnose import diagnose, evidence_line
from daemon.report import Hint
from probes import PROBES, get
from probes.capture.analysis import CaptureAnalyzer
from probes.capture.events import PacketEvent, TlsRecord
from probes.model import Finding, ProbeOutcome, ProbeStatus, Severity
from probes.mtls.outcome import Reason, Stage
from probes.mtls.result import RegistrarResult
from probes.sip import MsDiagnostic
from probes.tlswire import ALERTS, Alert, Sender, alert_hint

FE, RMX = Sender.FE, Sender.RMX


@dataclass(frozen=True)
class MtlsCase:
    """One way an mtls probe of a registrar ends: where, why, and the alert it carries."""

    stage: Stage
    reason: Reason
    alert: int | None = None
    sender: Sender | None = None
    after_cert: bool = False  # our Certificate flight went out before it ended
    sip_status: int | None = None
    ms_ids: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """``stage/reason`` with the alert, as the routing table shows it."""
        text = f"{self.stage}/{self.reason}"
        if self.alert is not None:
            who = "from the Front End" if self.sender is FE else "sent by the probe"
            text += f", alert {self.alert} {ALERTS.get(self.alert, '')} {who}"
        if self.after_cert and self.reason is Reason.ALERT_HANDSHAKE_FAILURE:
            text += " after our certificate"
        if self.sip_status is not None:
            text += f", SIP {self.sip_status}" + "".join(f" ms-diagnostics {i}" for i in self.ms_ids)
        return text


S, R = Stage, Reason
# The alerts are what real peers produce (measured with OpenSSL 3.0 as client and server): the
# probe's own verification failures send 42 (48 for an unknown issuer, 45 expired, 43 wrong
# purpose), its security level 42 for a weak certificate and 40 for a weak DH group.
MTLS_CASES: tuple[MtlsCase, ...] = (
    MtlsCase(S.RESOLVE, R.DNS_FAILURE), MtlsCase(S.RESOLVE, R.DNS_TIMEOUT),
    MtlsCase(S.CONNECT, R.REFUSED), MtlsCase(S.CONNECT, R.TIMEOUT), MtlsCase(S.CONNECT, R.UNREACHABLE),
    MtlsCase(S.CONNECT, R.CONNECT_ERROR),
    MtlsCase(S.TLS, R.NO_TLS_ANSWER), MtlsCase(S.TLS, R.STALLED), MtlsCase(S.TLS, R.NOT_TLS),
    MtlsCase(S.TLS, R.CLOSED), MtlsCase(S.TLS, R.RESET),
    MtlsCase(S.TLS, R.CLOSED_AFTER_CLIENT_CERT, after_cert=True),
    MtlsCase(S.TLS, R.RESET_AFTER_CLIENT_CERT, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_HANDSHAKE_FAILURE, 40, FE),
    MtlsCase(S.TLS, R.ALERT_HANDSHAKE_FAILURE, 40, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_BAD_CERTIFICATE, 42, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_UNSUPPORTED_CERTIFICATE, 43, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_CERTIFICATE_REVOKED, 44, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_CERTIFICATE_EXPIRED, 45, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_CERTIFICATE_UNKNOWN, 46, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_UNKNOWN_CA, 48, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_ACCESS_DENIED, 49, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_DECRYPT_ERROR, 51, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_PROTOCOL_VERSION, 70, FE),
    MtlsCase(S.TLS, R.ALERT_INSUFFICIENT_SECURITY, 71, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_CERTIFICATE_REQUIRED, 116, FE, after_cert=True),
    MtlsCase(S.TLS, R.ALERT_OTHER, 50, FE, after_cert=True),
    MtlsCase(S.TLS, R.SERVER_CERT_UNTRUSTED, 48, RMX), MtlsCase(S.TLS, R.SERVER_CERT_NAME_MISMATCH, 42, RMX),
    MtlsCase(S.TLS, R.SERVER_CERT_EXPIRED, 45, RMX), MtlsCase(S.TLS, R.SERVER_CERT_NOT_YET_VALID, 42, RMX),
    MtlsCase(S.TLS, R.SERVER_CERT_INVALID, 43, RMX),
    MtlsCase(S.TLS, R.LOCAL_VERSION_REFUSED, 70, RMX),
    MtlsCase(S.TLS, R.LOCAL_POLICY_REFUSED, 42, RMX), MtlsCase(S.TLS, R.LOCAL_POLICY_REFUSED, 40, RMX),
    MtlsCase(S.TLS, R.HANDSHAKE_ERROR, 51, RMX),
    MtlsCase(S.SIP, R.OK, sip_status=200),
    MtlsCase(S.SIP, R.NOT_TRUSTED, sip_status=403, ms_ids=(1010,)),
    MtlsCase(S.SIP, R.ERROR_RESPONSE, sip_status=503, ms_ids=(5000,)),
    MtlsCase(S.SIP, R.BAD_RESPONSE), MtlsCase(S.SIP, R.TIMEOUT), MtlsCase(S.SIP, R.CLOSED), MtlsCase(S.SIP, R.RESET),
)


def mtls_result(case: MtlsCase, **changes: object) -> RegistrarResult:
    """The probe's result type for ``case`` (no chain, no CA list unless ``changes`` give them)."""
    fields: dict[str, object] = dict(
        registrar="pool.lab.example:5061", address="192.0.2.10:5061", sni="pool.lab.example", stage=case.stage,
        reason=case.reason, phases=(), tls_version=None, cipher=None, alert=case.alert, alert_direction=case.sender,
        after_handshake=False, verify_code=None, verify_message=None, ssl_reason=None, errno=None,
        client_cert_requested=True if case.after_cert or case.stage is Stage.SIP else None,
        client_cert_sent=case.after_cert or case.stage is Stage.SIP, client_cert_empty=False, ca_names=None,
        rmx_issuer=None, rmx_issuer_listed=None, server_chain=(), sip_status=case.sip_status,
        sip_reason_phrase="Forbidden" if case.sip_status == 403 else None, sip_server=None,
        ms_diagnostics=tuple(MsDiagnostic(i, None, "reason", "fe01.lab.example") for i in case.ms_ids), ladder=())
    fields.update(changes)
    return RegistrarResult(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Variant:
    """One finding as a probe builds it, and the words the routing table uses for when it happens."""

    probe: str
    finding: Finding
    when: str


def _mtls_variants() -> Iterator[Variant]:
    for case in MTLS_CASES:
        yield Variant("mtls", mtls_result(case).findings()[0], case.label)
    handshake = MtlsCase(Stage.SIP, Reason.OK, sip_status=200)
    not_requested = mtls_result(handshake, client_cert_requested=False, client_cert_sent=False)
    yield Variant("mtls", not_requested.findings()[1], "the handshake had no CertificateRequest")
    unlisted = mtls_result(MtlsCase(Stage.TLS, Reason.ALERT_UNKNOWN_CA, 48, FE, after_cert=True),
                           rmx_issuer="CN=RMX CA", rmx_issuer_der=b"\x30\x00", rmx_issuer_listed=False,
                           ca_names=("CN=Other CA",), ca_ders=(b"\x30\x02\x31\x00",))
    yield Variant("mtls", unlisted.findings()[1], "the CertificateRequest CA list does not name the RMX issuer")
    from probes.mtls.tls import CertInfo

    leaf = CertInfo(0, "CN=fe01.lab.example", "CN=Issuing CA", "1", "", "", 0.0, (), "AB:CD")
    unchecked = mtls_result(handshake, server_chain=(leaf,), fe_chain_checked=False)
    yield Variant("mtls", unchecked.findings()[1], "no trust anchors were given (--rmx-trust): the Front End "
                  "chain was recorded, not checked")


# --- the capture: findings made by the analysis from packet events ------------------------------

RMX_IP, FE_IP = "10.0.0.5", "10.0.0.9"


def _ev(ts: float, from_rmx: bool, **kw: object) -> PacketEvent:
    src, dst = (RMX_IP, FE_IP) if from_rmx else (FE_IP, RMX_IP)
    sport, dport = (40000, 5061) if from_rmx else (5061, 40000)
    return PacketEvent(ts, src, sport, dst, dport, **kw)  # type: ignore[arg-type]


def _opening(client_cert: int | None) -> list[PacketEvent]:
    """SYN, SYN-ACK, ClientHello, the FE's flight with a CertificateRequest, the RMX's Certificate."""
    events = [_ev(0.0, True, syn=True), _ev(0.01, False, syn=True, ack=True),
              _ev(0.02, True, ack=True, records=(TlsRecord(22, (1,)),), legacy_version=0x0303),
              _ev(0.03, False, ack=True, records=(TlsRecord(22, (2, 11, 13, 14)),), legacy_version=0x0303,
                  cipher=0xC02F, ca_names=(b"\x30\x02\x31\x00",))]
    if client_cert is not None:
        events.append(_ev(0.04, True, ack=True, records=(TlsRecord(22, (11, 16)),),
                          certificate_lengths=(client_cert,)))
    return events


def _capture(events: Sequence[PacketEvent], issuers: Sequence[bytes] = ()) -> list[Finding]:
    analyzer = CaptureAnalyzer(5061, RMX_IP, issuers)
    for event in events:
        analyzer.feed(event)
    return analyzer.finish()[1]


def capture_alert(alert: Alert, after_cert: bool) -> Finding:
    """The capture's finding for a fatal ``alert`` (after the RMX's certificate or not)."""
    end = _ev(0.06, alert.sender is FE, rst=True, ack=True)
    events = [*_opening(1200 if after_cert else None),
              _ev(0.05, alert.sender is RMX, ack=True, records=(TlsRecord(21, (), 2, alert.number),)), end]
    return next(f for f in _capture(events) if f.code == "CAPTURE_TLS_ALERT")


def _capture_variants() -> Iterator[Variant]:
    for sender in Sender:
        for number in sorted({*ALERTS, 99} - {0}):
            for after_cert in ((False, True) if sender is FE and number == 40 else (True,)):
                yield Variant("capture", capture_alert(Alert(number, sender), after_cert),
                              _alert_words(Alert(number, sender), after_cert))
    scripts: list[tuple[str, list[PacketEvent], Sequence[bytes]]] = [
        ("the RMX answered the CertificateRequest with an empty Certificate",
         [*_opening(0), _ev(0.05, False, fin=True, ack=True), _ev(0.06, True, fin=True, ack=True)], ()),
        ("the Front End reset the connection right after the RMX certificate",
         [*_opening(1200), _ev(0.05, False, rst=True, ack=True)], ()),
        ("a SYN answered by a reset",
         [_ev(0.0, True, syn=True), _ev(0.01, False, rst=True, ack=True)], ()),
        ("the CertificateRequest CA list does not name the RMX issuer",
         [*_opening(1200), _ev(0.05, False, ack=True, records=(TlsRecord(20), TlsRecord(22))),
          _ev(0.06, True, fin=True, ack=True), _ev(0.07, False, fin=True, ack=True)], (b"\x30\x00",)),
        ("the Front End closed the connection right after the ClientHello, without an alert",
         [_ev(0.0, True, syn=True), _ev(0.01, False, syn=True, ack=True),
          _ev(0.02, True, ack=True, records=(TlsRecord(22, (1,)),), legacy_version=0x0303),
          _ev(0.03, False, fin=True, ack=True), _ev(0.04, True, fin=True, ack=True)], ()),
        ("clear text (SIP over TCP) from the RMX on the TLS port",
         [_ev(0.0, True, syn=True), _ev(0.01, False, syn=True, ack=True),
          _ev(0.02, True, ack=True, cleartext="OPTIONS sip:fe SIP/2.0"),
          _ev(0.03, False, fin=True, ack=True), _ev(0.04, True, fin=True, ack=True)], ()),
        ("a handshake still open when the capture ends",
         [_ev(0.0, True, syn=True), _ev(0.01, False, syn=True, ack=True),
          _ev(0.02, True, ack=True, records=(TlsRecord(22, (1,)),), legacy_version=0x0303)], ()),
    ]
    for status, ids in ((403, (1010,)), (504, (1013,))):
        headers = "".join(f'ms-diagnostics: {i};reason="r";source="fe01.lab.example"\r\n' for i in ids)
        scripts.append((f"a decrypted SIP {status} with ms-diagnostics {', '.join(map(str, ids))}",
                        [*_opening(1200), _ev(0.05, False, ack=True, records=(TlsRecord(20), TlsRecord(23)),
                                              sip_first_line=f"SIP/2.0 {status} Refused", sip_headers=headers)],
                        ()))
    for when, events, issuers in scripts:
        for finding in _capture(events, issuers):
            if finding.code not in ("CAPTURE_SUMMARY", "CAPTURE_TLS_ALERT"):
                yield Variant("capture", finding, when)
    yield Variant("capture", _capture([])[0], "always: the counts of the capture")
    from collections import Counter

    from probes.capture.elsewhere import nothing_on_port

    yield Variant("capture", nothing_on_port(5060, Counter({5061: 3}), "rmx.pcap"),
                  "no connection on the port asked for (what the capture held instead is in the message)")
    yield Variant("capture", Finding("CAPTURE_INCOMPLETE", Severity.WARNING, "the capture was read only in part",
                                     {"count": 1}), "tshark reports the file damaged or cut short")


def _alert_words(alert: Alert, after_cert: bool) -> str:
    who = "from the Front End" if alert.sender is FE else "from the RMX"
    return f"alert {alert.number} {who}" + (" after the RMX certificate" if alert.number == 40 and after_cert
                                            and alert.sender is FE else "")


def _other_variants() -> Iterator[Variant]:
    for probe in ("certificate", "alarms"):
        for code in sorted(get(probe).findings):
            known = hint_code(code)
            severity = CATALOGUE[known].severity if known else Severity.INFO
            when = CATALOGUE[known].title.lower() if known else "an informational fact (no problem)"
            yield Variant(probe, Finding(code, severity, code.lower().replace("_", " ")), when)


def variants() -> list[Variant]:
    """Every finding every probe can emit (one per distinct way it is built)."""
    return [*_mtls_variants(), *_capture_variants(), *_other_variants()]


def alone(variant: Variant) -> tuple[Hint, ...]:
    """The hints of a target whose only finding is ``variant``'s."""
    return diagnose([ProbeOutcome(variant.probe, ProbeStatus.OK, 0.0, (variant.finding,))])


def reported_as(variant: Variant, hints: Sequence[Hint]) -> list[str]:
    """The codes of the hints that cite ``variant``'s finding."""
    line = evidence_line(variant.probe, variant.finding)
    return [h.code for h in hints if line in h.evidence]


def _folds(code: str) -> str:
    known = hint_code(code)
    if known is None:
        return "—"
    if known in GENERIC_SYMPTOMS:
        return "any root cause that cites the same event"
    return ", ".join(f"`{c}`" for c in sorted(FOLDS_INTO.get(known, ()))) or "nothing (always its own hint)"


def routing_markdown() -> str:
    """The README's routing table: probe, finding code, when, reported alone as, may be folded into."""
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    for variant in variants():
        codes = reported_as(variant, alone(variant))
        reported = ", ".join(f"`{c}`" for c in codes) or "— (informational: no hint)"
        key = (variant.probe, variant.finding.code, reported, _folds(variant.finding.code))
        rows.setdefault(key, []).append(variant.when)
    lines = ["| probe | finding code | when | reported alone as | may be folded into |", "|---|---|---|---|---|"]
    order = list(PROBES)
    for (probe, code, reported, folds), whens in sorted(rows.items(), key=lambda kv: (order.index(kv[0][0]),
                                                                                       kv[0][1], kv[0][2])):
        when = _merged(whens)
        lines.append(f"| {probe} | `{code}` | {when} | {reported} | {folds} |")
    return "\n".join(lines) + "\n"


def _merged(whens: list[str]) -> str:
    """The capture's per-alert rows merged into one ("alert 42, 43 from the Front End")."""
    if len(whens) == 1 or not all(w.startswith("alert ") for w in whens):
        return "; ".join(dict.fromkeys(whens))
    groups: dict[str, list[str]] = {}
    for w in whens:
        number, rest = w.removeprefix("alert ").split(" ", 1)
        groups.setdefault(rest, []).append(number)
    return "; ".join(f"alert {', '.join(numbers)} {rest}" for rest, numbers in groups.items())


def alert_table_codes() -> set[str]:
    """Every hint code the one alert table can name (for the reachability test)."""
    return {code for sender in Sender for number in ALERTS
            for code in (alert_hint(Alert(number, sender)), alert_hint(Alert(number, sender), after_client_cert=True))
            if code}
