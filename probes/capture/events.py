"""The per-packet event record that the extraction produces and the pure analysis consumes.

It holds only the facts the analysis needs (addresses, TCP flags, TLS records, certificates, the
CertificateRequest CA names, a decrypted SIP message), so the analysis never sees tshark or
pyshark and unit tests can build events by hand or replay them from small JSON-lines fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TlsRecord:
    """One TLS record: content type (20 CCS, 21 alert, 22 handshake, 23 data) and what it showed.

    ``handshakes`` is empty for an encrypted handshake record; ``alert_desc`` is None for an
    encrypted alert.
    """

    content_type: int
    handshakes: tuple[int, ...] = ()
    alert_level: int | None = None
    alert_desc: int | None = None


@dataclass(frozen=True, slots=True)
class PacketEvent:
    """The facts of one captured TCP segment on the SIP TLS port (never the packet itself)."""

    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    syn: bool = False
    ack: bool = False
    rst: bool = False
    fin: bool = False
    retransmission: bool = False
    records: tuple[TlsRecord, ...] = ()
    legacy_version: int | None = None  # tls.handshake.version of a ClientHello/ServerHello
    versions: tuple[int, ...] = ()  # supported_versions: offered (ClientHello) or chosen (ServerHello)
    cipher: int | None = None  # ServerHello cipher suite
    sni: str | None = None
    certificates: tuple[bytes, ...] = ()  # DER, in message order
    certificate_lengths: tuple[int, ...] = ()  # one per Certificate message; 0 = empty list
    ca_names: tuple[bytes, ...] | None = None  # DER names of a CertificateRequest, when read
    sip_first_line: str | None = None  # decrypted SIP start line (request or status line)
    sip_headers: str | None = None  # decrypted raw header block (for ms-diagnostics)
    cleartext: str | None = None  # the start of a payload that is not a TLS record (see cleartext_head)

    def to_json(self) -> dict[str, Any]:
        """A compact JSON object (the worker -> parent wire format and the fixture format)."""
        doc: dict[str, Any] = {"t": self.ts, "s": self.src, "sp": self.sport, "d": self.dst, "dp": self.dport}
        flags = "".join(c for c, on in (("S", self.syn), ("A", self.ack), ("R", self.rst), ("F", self.fin),
                                          ("r", self.retransmission)) if on)
        if flags:
            doc["f"] = flags
        if self.records:
            doc["rec"] = [[r.content_type, list(r.handshakes), r.alert_level, r.alert_desc] for r in self.records]
        for key, value in (("lv", self.legacy_version), ("cs", self.cipher), ("sni", self.sni),
                           ("sip", self.sip_first_line), ("hdr", self.sip_headers), ("pt", self.cleartext)):
            if value is not None:
                doc[key] = value
        if self.versions:
            doc["v"] = list(self.versions)
        if self.certificates:
            doc["crt"] = [c.hex() for c in self.certificates]
        if self.certificate_lengths:
            doc["cl"] = list(self.certificate_lengths)
        if self.ca_names is not None:
            doc["ca"] = [n.hex() for n in self.ca_names]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PacketEvent:
        """The inverse of :meth:`to_json` (KeyError/TypeError/ValueError on a malformed object)."""
        flags = str(doc.get("f", ""))
        records = tuple(TlsRecord(int(r[0]), tuple(int(h) for h in r[1]),
                                  None if r[2] is None else int(r[2]), None if r[3] is None else int(r[3]))
                        for r in doc.get("rec", ()))
        ca = doc.get("ca")
        return cls(
            ts=float(doc["t"]), src=str(doc["s"]), sport=int(doc["sp"]), dst=str(doc["d"]), dport=int(doc["dp"]),
            syn="S" in flags, ack="A" in flags, rst="R" in flags, fin="F" in flags, retransmission="r" in flags,
            records=records,
            legacy_version=_opt_int(doc.get("lv")), versions=tuple(int(v) for v in doc.get("v", ())),
            cipher=_opt_int(doc.get("cs")), sni=doc.get("sni"),
            certificates=tuple(bytes.fromhex(c) for c in doc.get("crt", ())),
            certificate_lengths=tuple(int(n) for n in doc.get("cl", ())),
            ca_names=None if ca is None else tuple(bytes.fromhex(n) for n in ca),
            sip_first_line=doc.get("sip"), sip_headers=doc.get("hdr"), cleartext=doc.get("pt"),
        )


_TLS_CONTENT_TYPES = frozenset({20, 21, 22, 23, 24})  # CCS, alert, handshake, application data, heartbeat
_SSLV2 = 0x80
CLEARTEXT_CHARS = 60


def cleartext_head(payload: bytes) -> str | None:
    """The first line of ``payload`` (printable, at most 60 characters) when it cannot start a TLS
    record; None when it can (or is empty). Only meaningful for the first payload of a side: a TLS
    record split over segments continues with arbitrary bytes."""
    if not payload or payload[0] in _TLS_CONTENT_TYPES or payload[0] == _SSLV2:
        return None
    line = payload[:CLEARTEXT_CHARS].split(b"\r", 1)[0].split(b"\n", 1)[0]
    return "".join(chr(b) if 32 <= b < 127 else "." for b in line) or "."


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
