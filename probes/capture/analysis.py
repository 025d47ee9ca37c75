"""Pure capture analysis: per-connection TLS handshake histories from a stream of packet events.

No tshark, no I/O. Memory stays flat: one small state object per live TCP connection, never a
packet; finished connections are folded into counters and a bounded list of summaries.
Direction: the RMX is the client of the SIP TLS connection unless ``rmx_ip`` says otherwise; with
``rmx_ip``, only connections to or from that address are the RMX's: the others (a Front End
capture also holds its Edge, Director and pool peers on 5061) are counted per host, never judged.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from probes.capture.events import PacketEvent
from probes.capture.result import CaptureResult, ConnectionSummary, parse_ms_diagnostics
from probes.certificate.load import CERT_PARSE_ERRORS, quiet_parser_warnings
from probes.model import Facts, Finding, Severity
from probes.tlswire import HANDSHAKE_NAMES, Alert, Sender, alert_name, dn_to_rfc4514, version_name

MAX_LISTED = 200  # connection summaries kept for the report; counters cover every connection
MAX_LISTED_OK = 50  # of which at most this many healthy ones: problems are what a reader looks for
RECENTLY_CLOSED = 4096  # closed 4-tuples remembered so a trailing RST/FIN does not open a phantom connection
MAX_HISTORY = 40  # tokens per connection history
# A SYN or ClientHello counts as "never answered" only when the client gave up, retransmitted, or
# the capture went on this long after it; otherwise the capture merely ended too early.
ANSWER_GRACE = 3.0


@dataclass
class _Conn:
    """The state of one TCP connection (client -> server port), built as events arrive."""

    client: str
    server: str
    rmx_is_client: bool
    first_ts: float
    last_ts: float = 0.0
    syn: bool = False
    syn_ts: float = 0.0
    hello_ts: float = 0.0
    syn_ack: bool = False
    server_rst_to_syn: bool = False
    history: list[str] = field(default_factory=list)
    offered: tuple[int, ...] = ()
    chosen: int | None = None
    cipher: int | None = None
    sni: str | None = None
    client_hello: bool = False
    client_finished: bool = False  # only visible decrypted (TLS 1.3 with a key log or embedded secrets)
    server_answered: bool = False  # any TLS record, RST or FIN from the server after the ClientHello
    server_hello: bool = False
    server_ccs: bool = False
    cert_request: bool = False
    ca_names: tuple[bytes, ...] | None = None
    server_chain: list[tuple[str, str]] = field(default_factory=list)
    client_chain: list[tuple[str, str]] = field(default_factory=list)
    client_issuer_der: bytes | None = None
    client_cert_sent: bool | None = None  # None: no client Certificate message seen; False: empty
    after_client_cert: str | None = None  # "rst"/"fin" from the server right after the client flight
    alerts: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    retransmissions: int = 0
    rst_from: set[str] = field(default_factory=set)
    fin_from: set[str] = field(default_factory=set)
    sip: list[dict[str, Any]] = field(default_factory=list)
    tls_from: set[str] = field(default_factory=set)  # "C"/"S": the sides that sent a TLS record
    cleartext: tuple[str, str] | None = None  # (from_rmx|from_fe, its first line): not TLS on the port

    @property
    def name(self) -> str:
        return f"{self.client} -> {self.server}"

    def side(self, from_client: bool) -> str:
        """``from_rmx`` / ``from_fe`` for a packet sent by the client (True) or the server."""
        return "from_rmx" if from_client == self.rmx_is_client else "from_fe"

    def note(self, token: str) -> None:
        if len(self.history) < MAX_HISTORY:
            self.history.append(token)
        elif self.history[-1] != "…":
            self.history.append("…")


@functools.lru_cache(maxsize=256)  # the same few chains repeat in every connection of a capture
def _names(der: bytes) -> tuple[str, str, bytes]:
    with quiet_parser_warnings():  # a certificate seen on the wire may be odd DER: no warning on stderr
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.issuer.public_bytes()


class CaptureAnalyzer:
    """Feed :class:`PacketEvent` objects in capture order, then call :meth:`finish` once."""

    def __init__(self, port: int = 5061, rmx_ip: str | None = None,
                 rmx_issuers: Iterable[bytes] = ()) -> None:
        self.port = port
        self.rmx_ip = _normal_ip(rmx_ip)
        self.rmx_issuers = tuple(rmx_issuers)  # DER issuer names known from the RMX certificate
        self.events = 0
        self._live: dict[tuple[str, int, str, int], _Conn] = {}
        self._done: list[ConnectionSummary] = []
        self._listed_ok = 0
        self._omitted = 0
        self._closed: dict[tuple[str, int, str, int], None] = {}  # insertion-ordered, bounded
        self._outcomes: Counter[str] = Counter()
        self._alerts: Counter[str] = Counter()
        self._findings: dict[tuple[str, ...], tuple[Finding, int]] = {}
        self._connections = 0
        self._last_ts = 0.0
        self.others: Counter[str] = Counter()  # with rmx_ip: connections of other hosts, per client address
        self._other_keys: dict[tuple[str, int, str, int], None] = {}  # insertion-ordered, bounded

    def feed(self, ev: PacketEvent) -> None:
        """Account one packet event."""
        self.events += 1
        self._last_ts = max(self._last_ts, ev.ts)
        if ev.dport == self.port:
            key, from_client = (ev.src, ev.sport, ev.dst, ev.dport), True
        elif ev.sport == self.port:
            key, from_client = (ev.dst, ev.dport, ev.src, ev.sport), False
        else:
            return
        if self.rmx_ip is not None and self.rmx_ip not in (key[0], key[2]):
            self._other(key)
            return
        conn = self._live.get(key)
        new_syn = ev.syn and not ev.ack and from_client and not ev.retransmission
        if conn is None and not new_syn and key in self._closed:
            return  # the tail (final RST/FIN) of a connection already summarised
        if conn is None or (new_syn and (conn.syn_ack or conn.client_hello)):
            if conn is not None:  # port reuse: a new SYN after a finished connection
                self._close(key, conn)
            client, server = f"{key[0]}:{key[1]}", f"{key[2]}:{key[3]}"
            rmx_is_client = self.rmx_ip is None or self.rmx_ip == key[0]
            conn = _Conn(client, server, rmx_is_client, ev.ts)
            self._live[key] = conn
            self._connections += 1
        conn.last_ts = ev.ts
        self._apply(conn, ev, from_client)
        if (conn.rst_from or len(conn.fin_from) == 2) and not ev.retransmission:
            self._close(key, conn)

    def _other(self, key: tuple[str, int, str, int]) -> None:
        """Count a connection that does not involve ``rmx_ip`` once (its client is what the user sees)."""
        if key in self._other_keys:
            return
        self._other_keys[key] = None
        if len(self._other_keys) > RECENTLY_CLOSED:
            del self._other_keys[next(iter(self._other_keys))]
        self.others[key[0]] += 1

    def _apply(self, conn: _Conn, ev: PacketEvent, from_client: bool) -> None:
        who = "C" if from_client else "S"
        if ev.retransmission:
            conn.retransmissions += 1
            return  # tshark does not re-dissect a retransmitted TLS segment; flags were seen already
        if ev.syn:
            if from_client and not ev.ack:
                conn.syn, conn.syn_ts = True, ev.ts
                conn.note("C:SYN")
            elif not from_client and ev.ack:
                conn.syn_ack = True
                conn.note("S:SYN-ACK")
        for record in ev.records:
            self._record(conn, ev, record, from_client, who)
        if ev.records:
            conn.tls_from.add(who)
        elif who not in conn.tls_from and conn.cleartext is None and (ev.cleartext or ev.sip_first_line):
            # The first bytes of a side that never spoke TLS: clear text on the TLS port (SIP over
            # TCP from an RMX whose transport is not TLS, or a service there that is not TLS).
            conn.cleartext = (conn.side(from_client), ev.cleartext or ev.sip_first_line or "")
            conn.note(f"{who}:NotTLS")
        if ev.certificates or ev.certificate_lengths:
            self._certificates(conn, ev, from_client)
        if ev.ca_names is not None and not from_client:
            conn.ca_names = ev.ca_names
        if ev.sip_first_line:
            self._sip(conn, ev)
        if ev.rst:
            conn.rst_from.add(who)
            conn.note(f"{who}:RST")
            if not from_client:
                self._server_closed(conn, "rst")
        if ev.fin:
            conn.fin_from.add(who)
            conn.note(f"{who}:FIN")
            if not from_client:
                self._server_closed(conn, "fin")

    def _server_closed(self, conn: _Conn, how: str) -> None:
        if conn.syn and not conn.syn_ack and how == "rst":
            conn.server_rst_to_syn = True
        if conn.client_hello and not (conn.fin_from or conn.rst_from) - {"S"}:
            conn.server_answered = True  # a close after the client gave up is no answer
        # "Right after the client flight": the server never completed (no CCS/alert) and closed.
        if conn.client_cert_sent is not None and not conn.server_ccs and not conn.alerts \
                and conn.after_client_cert is None:
            conn.after_client_cert = how

    def _record(self, conn: _Conn, ev: PacketEvent, record: Any, from_client: bool, who: str) -> None:
        if not from_client and conn.client_hello:
            conn.server_answered = True
        if record.content_type == 20:
            conn.note(f"{who}:ChangeCipherSpec")
            if not from_client:
                conn.server_ccs = True
        elif record.content_type == 21:
            name = alert_name(record.alert_desc)
            level = {1: "warning", 2: "fatal"}.get(record.alert_level or 0, "encrypted")
            conn.note(f"{who}:Alert({level},{name})" if record.alert_desc is not None else f"{who}:Alert(encrypted)")
            conn.alerts.append((conn.side(from_client), record.alert_level, record.alert_desc))
        elif record.content_type == 22:
            if not record.handshakes:
                conn.note(f"{who}:EncryptedHandshake")
            for hs in record.handshakes:
                self._handshake(conn, ev, hs, from_client, who)
        elif record.content_type == 23:
            conn.note(f"{who}:ApplicationData")

    def _handshake(self, conn: _Conn, ev: PacketEvent, hs: int, from_client: bool, who: str) -> None:
        label = HANDSHAKE_NAMES.get(hs, f"Handshake{hs}")
        if hs == 11 and from_client and ev.certificate_lengths:
            label += "(empty)" if ev.certificate_lengths[0] == 0 else ""
        conn.note(f"{who}:{label}")
        if hs == 1 and from_client:
            conn.client_hello, conn.hello_ts = True, ev.ts
            conn.offered = ev.versions or ((ev.legacy_version,) if ev.legacy_version else ())
            conn.sni = ev.sni
        elif hs == 2 and not from_client:
            conn.server_hello = True
            conn.chosen = ev.versions[0] if ev.versions else ev.legacy_version
            conn.cipher = ev.cipher
        elif hs == 13 and not from_client:
            conn.cert_request = True
        elif hs == 20 and from_client:
            conn.client_finished = True

    def _certificates(self, conn: _Conn, ev: PacketEvent, from_client: bool) -> None:
        chain = conn.client_chain if from_client else conn.server_chain
        if from_client:
            conn.client_cert_sent = bool(ev.certificates) or not ev.certificate_lengths or \
                ev.certificate_lengths[0] > 0
        if chain:
            return
        for position, der in enumerate(ev.certificates):
            try:
                subject, issuer, issuer_der = _names(der)
            except CERT_PARSE_ERRORS:
                subject, issuer, issuer_der = "<unparsable certificate>", "", b""
            chain.append((subject, issuer))
            if from_client and position == 0:
                conn.client_issuer_der = issuer_der

    def _sip(self, conn: _Conn, ev: PacketEvent) -> None:
        line = ev.sip_first_line or ""
        entry: dict[str, Any] = {"line": line[:200]}
        if line.startswith("SIP/2.0 "):
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                entry["status"] = int(parts[1])
                entry["reason"] = parts[2] if len(parts) > 2 else ""
        entry["ms_diagnostics"] = parse_ms_diagnostics(ev.sip_headers or "")
        if len(conn.sip) < 10:
            conn.sip.append(entry)
        what = entry["status"] if "status" in entry else line.split(" ")[0]
        conn.note(f"{'S' if 'status' in entry else 'C'}:SIP {what}")

    # --- closing a connection: outcome, findings, counters -------------------------------------

    def _close(self, key: tuple[str, int, str, int], conn: _Conn, at_end: bool = False) -> None:
        del self._live[key]
        self._closed[key] = None
        if len(self._closed) > RECENTLY_CLOSED:
            del self._closed[next(iter(self._closed))]
        summary = self._summarise(conn, self._last_ts if at_end else None)
        self._outcomes[summary.outcome] += 1
        healthy = summary.outcome in ("ok", "tls13_encrypted")
        if len(self._done) < MAX_LISTED and (not healthy or self._listed_ok < MAX_LISTED_OK):
            self._done.append(summary)
            self._listed_ok += healthy
        else:
            self._omitted += 1

    def _issuers(self, conn: _Conn) -> tuple[bytes, ...]:
        known = list(self.rmx_issuers)
        if conn.client_issuer_der is not None and conn.rmx_is_client:
            known.append(conn.client_issuer_der)
        return tuple(known)

    def _summarise(self, conn: _Conn, end_ts: float | None) -> ConnectionSummary:
        outcome = self._outcome(conn, end_ts)
        ca_names: tuple[str, ...] | None = None
        in_list: bool | None = None
        if conn.ca_names is not None:
            ca_names = tuple(_safe_dn(n) for n in conn.ca_names)
            issuers = self._issuers(conn)
            if issuers and conn.ca_names:  # an empty list means "any CA" (RFC 5246 §7.4.4)
                in_list = any(i in conn.ca_names for i in issuers)
                if not in_list:
                    self._finding(("CAPTURE_TRUNCATED_CA_LIST",), Finding(
                        "CAPTURE_TRUNCATED_CA_LIST", Severity.WARNING,
                        "the CertificateRequest CA list does not name the RMX certificate's issuer",
                        {"connection": conn.name, "ca_names": list(ca_names),
                         "rmx_issuer": _safe_dn(issuers[-1])},
                        Facts(rmx_issuer=issuers[-1], ca_list=conn.ca_names)))
        self._findings_for(conn, outcome)
        return ConnectionSummary(
            conn.name, outcome, tuple(conn.history),
            tuple(v for v in (version_name(o) for o in conn.offered) if v), version_name(conn.chosen),
            None if conn.cipher is None else f"0x{conn.cipher:04x}", conn.sni,
            tuple(conn.server_chain), tuple(conn.client_chain), ca_names, in_list,
            tuple({"direction": d, "level": lv, "alert": ds, "alert_name": alert_name(ds)}
                  for d, lv, ds in conn.alerts),
            conn.retransmissions, tuple(conn.sip))

    @staticmethod
    def _outcome(conn: _Conn, end_ts: float | None) -> str:
        fatal = [a for a in conn.alerts if a[1] == 2]
        if fatal:
            return "alert"
        if conn.client_cert_sent is False and conn.cert_request:
            return "empty_client_cert"
        if conn.after_client_cert is not None:
            return "reset_after_client_cert"
        gave_up = "C" in conn.fin_from or "C" in conn.rst_from or conn.retransmissions > 0

        def waited(since: float) -> bool:
            return gave_up or end_ts is None or end_ts - since >= ANSWER_GRACE

        if conn.syn and not conn.syn_ack:
            if conn.server_rst_to_syn:
                return "refused"
            return "no_syn_ack" if waited(conn.syn_ts) else "incomplete"
        if conn.client_hello and not conn.server_answered:
            return "no_server_hello" if waited(conn.hello_ts) else "incomplete"
        if conn.client_hello and not conn.server_hello:
            return "closed_after_client_hello"
        if conn.server_hello:
            if conn.sip or (conn.server_ccs and conn.chosen != 0x0304):
                return "ok"
            # Decrypted TLS 1.3: the client finished and the server did not reset it (a rejection
            # of the client certificate would be a fatal alert, handled above).
            if conn.client_finished and "S" not in conn.rst_from:
                return "ok"
            # TLS 1.3 encrypts everything after the ServerHello (a rejection alert included): without a
            # key log the capture cannot tell success from a late rejection.
            return "tls13_encrypted" if conn.chosen == 0x0304 else "incomplete"
        return "not_tls" if conn.syn_ack else "incomplete"

    def _findings_for(self, conn: _Conn, outcome: str) -> None:
        base = {"connection": conn.name}
        if conn.offered:
            base["tls_version"] = version_name(conn.chosen) or ""
        for direction, level, desc in conn.alerts:
            if level != 2 or desc is None:
                continue
            alert = Alert(desc, Sender(direction))
            # After the client's Certificate flight (the RMX's, or an empty one).
            after_cert = conn.client_cert_sent is not None
            self._finding(("CAPTURE_TLS_ALERT", str(desc), direction, str(after_cert)), Finding(
                "CAPTURE_TLS_ALERT", Severity.CRITICAL,
                f"fatal TLS alert {alert.name} ({desc}) sent {_side(direction)}"
                + (" after the client certificate" if after_cert else ""),
                {**base, **alert.evidence()}, Facts(alert=alert, after_client_cert=after_cert)))
        if conn.client_cert_sent is False and conn.cert_request:
            self._finding(("CAPTURE_EMPTY_CLIENT_CERT",), Finding(
                "CAPTURE_EMPTY_CLIENT_CERT", Severity.CRITICAL,
                "the client answered the CertificateRequest with an empty Certificate",
                {**base, "direction": conn.side(True)}))
        if conn.after_client_cert is not None:
            reset = conn.after_client_cert == "rst"
            self._finding(("CAPTURE_RESET_AFTER_CLIENT_CERT",), Finding(
                "CAPTURE_RESET_AFTER_CLIENT_CERT", Severity.CRITICAL,
                f"the server {'reset' if reset else 'closed'} the connection right after the client "
                "certificate flight, without an alert",
                {**base, "reason": "reset" if reset else "closed", "direction": conn.side(False)},
                Facts(after_client_cert=True, dropped_after_client_cert=True)))
        if outcome == "not_tls" and conn.cleartext is not None:
            # Only for a connection whose start is in the capture: the first payload of a side
            # joined midway could be the middle of a TLS record.
            direction, text = conn.cleartext
            self._finding(("TLS_PORT_NOT_TLS", direction), Finding(
                "TLS_PORT_NOT_TLS", Severity.CRITICAL,
                f"clear text, not TLS, on the TLS port {self.port}: {_who(direction)} sent '{text}'",
                {**base, "stage": "tls", "reason": "not_tls", "direction": direction, "first_line": text}))
        if outcome in ("no_syn_ack", "refused", "no_server_hello"):
            stage = "tls" if outcome == "no_server_hello" else "connect"
            message = {"no_syn_ack": "SYN never answered", "refused": "SYN answered by a reset (nothing listens)",
                       "no_server_hello": "ClientHello never answered"}[outcome]
            self._finding(("CAPTURE_NO_SERVER_RESPONSE", outcome), Finding(
                "CAPTURE_NO_SERVER_RESPONSE", Severity.CRITICAL, message,
                {**base, "stage": stage, "reason": outcome}))
        if outcome == "closed_after_client_hello":
            # The server answered the ClientHello with a FIN or RST instead of a ServerHello or an
            # alert: it refused the offer (versions, cipher suites, signature algorithms) without
            # saying why, as some Schannel configurations do, or the port is not a TLS listener.
            # The same observation by the mtls probe (tls stage, closed/reset) is this hint too.
            reset = "S" in conn.rst_from
            self._finding(("TLS_HANDSHAKE_FAILURE", outcome), Finding(
                "TLS_HANDSHAKE_FAILURE", Severity.CRITICAL,
                f"the server {'reset' if reset else 'closed'} the connection right after the ClientHello, "
                "without a ServerHello or an alert (it refused what the client offered)",
                {**base, "stage": "tls", "reason": "reset" if reset else "closed", "direction": conn.side(False)}))
        if outcome == "incomplete" and (conn.syn or conn.client_hello):
            # Its handshake began inside the capture and had no outcome when the capture ended (or
            # the file was cut): what the capture says about it is partial, never "OK". A connection
            # already established when the capture began is not cut: only its handshake is missing.
            self._finding(("CAPTURE_INCOMPLETE", "connection"), Finding(
                "CAPTURE_INCOMPLETE", Severity.WARNING,
                "a handshake that began in the capture has no outcome in it (the capture ends first)",
                {**base, "reason": "incomplete", "history": " ".join(conn.history[-6:])}))
        for entry in conn.sip:
            status = entry.get("status")
            if status is None or status < 300:
                continue
            code = "SIP_NOT_TRUSTED" if status in (401, 403) else "SIP_ERROR_RESPONSE"
            severity = Severity.CRITICAL if code == "SIP_NOT_TRUSTED" else Severity.WARNING
            ids = tuple(d["id"] for d in entry["ms_diagnostics"] if isinstance(d.get("id"), int))
            self._finding((code, str(status)), Finding(
                code, severity, f"SIP {status} {entry.get('reason', '')}".strip() + " in the decrypted capture",
                {**base, "stage": "sip", "sip_status": status, "ms_diagnostics": entry["ms_diagnostics"]},
                Facts(ms_diagnostics=ids)))

    def _finding(self, key: tuple[str, ...], finding: Finding) -> None:
        """Keep the first finding of each kind, counting how many connections showed it."""
        seen = self._findings.get(key)
        self._findings[key] = (seen[0] if seen else finding, (seen[1] if seen else 0) + 1)

    def finish(self, files: Iterable[str] = (), warnings: Iterable[str] = ()) -> tuple[CaptureResult, list[Finding]]:
        """Close every open connection and return the result and the findings."""
        for key, conn in list(self._live.items()):
            self._close(key, conn, at_end=True)
        for label, count in self._alert_counts():
            self._alerts[label] += count
        findings = [Finding(f.code, self._severity(f), f.message + (f" ({n} connections)" if n > 1 else ""),
                            {**f.evidence, "count": n}, f.facts)
                    for f, n in self._findings.values()]
        result = CaptureResult(tuple(files), self.port, self.events, self._connections, dict(self._outcomes),
                               dict(self._alerts), tuple(self._done), self._omitted, tuple(warnings),
                               sum(self.others.values()))
        findings.append(Finding("CAPTURE_SUMMARY", Severity.INFO, result.counts_line(),
                                {"count": self._connections}))
        return result, findings

    def _severity(self, finding: Finding) -> Severity:
        """A handshake cut by the end of the capture is a warning, unless the same capture shows a
        handshake that succeeded: then the link was seen working and the cut one is only noted
        (a bounded live capture nearly always cuts the connection in flight at its end)."""
        if finding.code == "CAPTURE_INCOMPLETE" and self._outcomes["ok"]:
            return Severity.INFO
        return finding.severity

    def _alert_counts(self) -> list[tuple[str, int]]:
        return [(f"{f.evidence['alert_name']} {f.evidence['direction']}", n)
                for f, n in self._findings.values() if f.code == "CAPTURE_TLS_ALERT"]


def _normal_ip(text: str | None) -> str | None:
    """``text`` as tshark prints addresses (IPv6 compressed), so "10.0.0.05"-style spellings still match."""
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text


def _who(direction: str) -> str:
    return "the RMX (client)" if direction == "from_rmx" else "the Front End (server)"


def _side(direction: str) -> str:
    return "by the RMX" if direction == "from_rmx" else "by the Front End"


def _safe_dn(der: bytes) -> str:
    try:
        return dn_to_rfc4514(der)
    except ValueError:
        return "#" + der.hex()


def analyse(events: Iterable[PacketEvent], port: int = 5061, rmx_ip: str | None = None,
            rmx_issuers: Iterable[bytes] = ()) -> tuple[CaptureResult, list[Finding]]:
    """Analyse a whole event stream at once (the unit tests' and fixtures' entry point)."""
    analyzer = CaptureAnalyzer(port, rmx_ip, rmx_issuers)
    for event in events:
        analyzer.feed(event)
    return analyzer.finish()
