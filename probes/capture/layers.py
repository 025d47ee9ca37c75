"""TLS facts of one frame: tshark's reassembled handshake, or the plaintext records of its TCP bytes.

Two sources, one result (:class:`PacketEvent`):

* with TLS secrets (a key log or a Decryption Secrets Block), :func:`event_from_packet` reads one
  pyshark packet through pyshark's public layer API: tshark's records, message types and its
  decrypted, reassembled message bytes (``tls.handshake_raw``, JSON with ``-x``). A handshake
  message spread over several records shows once, complete, with the record that ends it.
* without, :mod:`probes.capture.fields` reads tshark's field output, and the plaintext records of
  the TCP payloads (after tshark's TCP reassembly) are put together here the same way
  (:class:`Directions`): tshark 4.0 prints no CA name in fields or JSON (``tls.handshake.dname``
  is a label and its tree stops after the first name), and ``-x`` on every frame made the bench
  capture's JSON 11x larger and tshark 5x slower (measured).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from probes.capture.events import PacketEvent, TlsRecord, cleartext_head
from probes.capture.records import segment_records_prefix, split_messages
from probes.tlswire import certificate_list, certificate_request_cas, hello_body_facts

Key = tuple[str, int, str, int]  # src, sport, dst, dport: one direction of a connection
Message = tuple[int, bytes]  # handshake type, body
MAX_MESSAGE = 1 << 20  # a CA list of a few hundred roots is ~30 KB; anything past this is not a handshake
MAX_DIRECTIONS = 65536  # connection directions remembered (their CCS flag and any partial message)
RETRANSMISSION_KEYS = ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                       "tcp.analysis.spurious_retransmission")


def get(layer: Any, key: str) -> Any:
    """``layer.get_field(key)`` with the JSON key's full name, None when absent."""
    if layer is None or not hasattr(layer, "get_field"):
        return None
    try:
        return layer.get_field(key)
    except AttributeError:
        return None


def items(value: Any) -> list[Any]:
    """A field or layer that may occur once (a value) or several times (a list) as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _layers(value: Any) -> list[Any]:
    """The sub-layers (dict nodes) among ``value``'s occurrences."""
    return [v for v in items(value) if hasattr(v, "get_field")]


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, list) or hasattr(value, "get_field"):
        return None
    text = str(value)
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    first = items(value)[0] if items(value) else None
    return None if first is None or hasattr(first, "get_field") else str(first)


def _bytes(value: Any) -> bytes:
    text = _text(value) or ""
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return b""


def _raw_hexes(value: Any) -> list[str]:
    """The hex strings of a ``*_raw`` field: [hex, offset, length, mask, type], or a list of those."""
    found = items(value)
    if found and isinstance(found[0], list):
        return [str(raw[0]) for raw in found if raw]
    return [str(found[0])] if found else []


@dataclass
class _Direction:
    ccs: bool = False  # a ChangeCipherSpec went this way: later handshake records are encrypted
    pending: bytes = b""  # the start of a handshake message still incomplete


class Directions:
    """Per connection direction: the ChangeCipherSpec flag and plaintext handshake reassembly.

    Bounded: at most :data:`MAX_DIRECTIONS` directions (least recently seen dropped) and
    :data:`MAX_MESSAGE` pending bytes each; one small object per live direction, never a packet.
    """

    def __init__(self) -> None:
        self._state: OrderedDict[Key, _Direction] = OrderedDict()

    def state(self, key: Key, fresh: bool = False) -> _Direction:
        """The state of ``key`` (``fresh``: a SYN started the direction anew)."""
        current = self._state.pop(key, None)
        if current is None or fresh:
            current = _Direction()
        self._state[key] = current
        if len(self._state) > MAX_DIRECTIONS:
            self._state.popitem(last=False)
        return current

    @staticmethod
    def feed(state: _Direction, content_type: int, body: bytes) -> list[Message]:
        """Handshake messages completed by one plaintext record of this direction (none after a CCS)."""
        out: list[Message] = []
        if content_type == 20:
            state.ccs = True
            state.pending = b""
        elif content_type == 22 and not state.ccs:
            out, rest = split_messages(state.pending + body)
            if len(rest) >= 4 and int.from_bytes(rest[1:4], "big") > MAX_MESSAGE:
                rest = b""  # not a handshake message: do not wait for megabytes of it
            state.pending = rest
        return out


def records_from_payload(state: _Direction, records: Iterable[tuple[int, bytes]]) -> tuple[list[TlsRecord],
                                                                                           list[Message]]:
    """Records as tshark shows them and the handshake messages they complete, from plaintext records.

    A record holding only part of a handshake message is left out: the message shows, complete,
    with the record that ends it (as in tshark's reassembled view).
    """
    out: list[TlsRecord] = []
    messages: list[Message] = []
    for content_type, body in records:
        encrypted = state.ccs
        done = Directions.feed(state, content_type, body)
        messages += done
        if content_type == 21:
            plain = not encrypted and len(body) == 2 and body[0] in (1, 2)
            out.append(TlsRecord(21, (), body[0], body[1]) if plain else TlsRecord(21))
        elif content_type == 22:
            if encrypted or done:
                out.append(TlsRecord(22, tuple(t for t, _ in done)))
        else:
            out.append(TlsRecord(content_type))
    return out, messages


def payload_records(blobs: Iterable[bytes]) -> list[tuple[int, bytes]]:
    """TLS records of a frame's TCP bytes (reassembled PDU first, then the segment's own), each once."""
    seen: dict[tuple[int, bytes], None] = {}
    for blob in blobs:
        seen.update(dict.fromkeys(segment_records_prefix(blob)))
    return list(seen)


def _exact(raw_hex: str) -> Message | None:
    """A handshake message from tshark's raw bytes when they hold exactly one (not a fragment)."""
    try:
        data = bytes.fromhex(raw_hex)
    except ValueError:
        return None
    if len(data) >= 4 and 4 + int.from_bytes(data[1:4], "big") == len(data):
        return data[0], data[4:]
    return None


def _tls_records(pkt: Any, state: _Direction) -> tuple[list[TlsRecord], list[Message], int | None]:
    """tshark's records (fragments left out), its decrypted messages and an SSLv2 hello's version."""
    records: list[TlsRecord] = []
    messages: list[Message] = []
    sslv2: int | None = None
    ccs = state.ccs
    for tls in pkt.get_multiple_layers("tls"):
        for layer in [tls, *getattr(tls, "duplicate_layers", [])]:
            for rec in _layers(get(layer, "tls.record")):
                ctype = _int(get(rec, "tls.record.content_type")) or _int(get(rec, "tls.record.opaque_type")) or 0
                if ctype == 0 and _int(get(rec, "tls.handshake.type")) == 1:  # SSLv2-format ClientHello
                    sslv2 = _int(get(rec, "tls.handshake.version"))
                    records.append(TlsRecord(22, (1,)))
                    continue
                found = (_int(get(h, "tls.handshake.type")) for h in _layers(get(rec, "tls.handshake")))
                kinds = tuple(k for k in found if k is not None)
                messages += [m for m in map(_exact, _raw_hexes(get(rec, "tls.handshake_raw"))) if m]
                if ctype == 20:
                    ccs = True
                if ctype == 22 and not kinds and not ccs:
                    continue  # a fragment of a message tshark shows complete in a later frame
                level = desc = None
                alert = _layers(get(rec, "tls.alert_message"))
                if alert:
                    level, desc = _int(get(alert[0], "tls.alert_message.level")), \
                        _int(get(alert[0], "tls.alert_message.desc"))
                records.append(TlsRecord(ctype, kinds, level, desc))
    return records, messages, sslv2


def _retransmission(tcp: Any) -> bool:
    # tshark marks a retransmission only as an expert item below tcp.analysis.flags
    for analysis in _layers(get(tcp, "tcp.analysis")):
        for flags in _layers(get(analysis, "tcp.analysis.flags")):
            for expert in _layers(get(flags, "_ws.expert")):
                if any(get(expert, k) is not None for k in RETRANSMISSION_KEYS):
                    return True
    return False


def _certificates(messages: list[Message]) -> tuple[list[bytes], list[int]]:
    """DER list of the first Certificate message and each Certificate message's list length."""
    certs: list[bytes] | None = None
    lengths = []
    for kind, body in messages:
        if kind != 11:
            continue
        parsed = _certificate_body(body)
        if parsed is None:
            continue
        lengths.append(parsed[1])
        certs = parsed[0] if certs is None else certs
    return certs or [], lengths


def _certificate_body(body: bytes) -> tuple[list[bytes], int] | None:
    """(DER list, declared list length) of a TLS 1.2 or 1.3 Certificate body (the layout that fits exactly)."""
    if len(body) >= 3 and 3 + int.from_bytes(body[:3], "big") == len(body):
        tls13, length = False, int.from_bytes(body[:3], "big")
    elif body and len(body) >= 4 + body[0] and \
            4 + body[0] + int.from_bytes(body[1 + body[0]:4 + body[0]], "big") == len(body):
        tls13, length = True, int.from_bytes(body[1 + body[0]:4 + body[0]], "big")
    else:
        return None
    try:
        return certificate_list(body, tls13=tls13), length
    except ValueError:
        return None


def _ca_names(messages: list[Message]) -> tuple[bytes, ...] | None:
    """The CA list of the first CertificateRequest (TLS 1.2 field or 1.3 extension); None when unread."""
    body = next((b for t, b in messages if t == 13), None)
    if body is None:
        return None
    for tls13 in (False, True):
        try:
            return tuple(certificate_request_cas(body, tls13=tls13))
        except ValueError:
            continue
    return None


def message_facts(messages: list[Message]) -> dict[str, Any]:
    """The event fields the handshake messages of one frame give (hello, certificates, CA names)."""
    hello = next(((t, b) for t, b in messages if t in (1, 2)), None)
    facts = hello_body_facts(hello[1], client=hello[0] == 1) if hello else {}
    certs, lengths = _certificates(messages)
    legacy, cipher, sni = facts.get("legacy"), facts.get("cipher"), facts.get("sni")
    return {"legacy_version": legacy if isinstance(legacy, int) else None,
            "versions": tuple(int(v) for v in facts.get("versions", ())),  # type: ignore[attr-defined]
            "cipher": cipher if isinstance(cipher, int) else None, "sni": None if sni is None else str(sni),
            "certificates": tuple(certs), "certificate_lengths": tuple(lengths), "ca_names": _ca_names(messages)}


def event_from_packet(pkt: Any, directions: Directions) -> PacketEvent | None:
    """The event of one pyshark packet read with TLS secrets and ``include_raw`` (None: not TCP over IP)."""
    layers = {layer.layer_name for layer in pkt.layers}
    family = "ip" if "ip" in layers else "ipv6" if "ipv6" in layers else None
    if family is None or "tcp" not in layers:
        return None
    ip, tcp = pkt[family], pkt["tcp"]
    src, dst = _text(get(ip, f"{family}.src")), _text(get(ip, f"{family}.dst"))
    sport, dport = _int(get(tcp, "tcp.srcport")), _int(get(tcp, "tcp.dstport"))
    if src is None or dst is None or sport is None or dport is None:
        return None
    bits = _int(get(tcp, "tcp.flags")) or 0  # FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10
    syn = bool(bits & 0x02)
    retransmission = _retransmission(tcp)
    state = directions.state((src, sport, dst, dport), fresh=syn and not retransmission)
    records, messages, sslv2 = _tls_records(pkt, state)
    state.ccs = state.ccs or any(r.content_type == 20 for r in records)
    facts = message_facts(messages)
    if sslv2 is not None:
        facts["legacy_version"] = sslv2
    if not records and not retransmission:
        facts["cleartext"] = cleartext_head(_bytes(get(tcp, "tcp.payload")))
    sip = pkt.get_multiple_layers("sip")
    first_line = headers = None
    if sip:
        first_line = _text(get(sip[0], "sip.Status-Line")) or _text(get(sip[0], "sip.Request-Line"))
        headers = _text(get(sip[0], "sip.msg_hdr"))
    return PacketEvent(
        ts=float(pkt.sniff_timestamp), src=src, sport=sport, dst=dst, dport=dport,
        syn=syn, ack=bool(bits & 0x10), rst=bool(bits & 0x04), fin=bool(bits & 0x01),
        retransmission=retransmission, records=tuple(records), **facts,
        sip_first_line=first_line, sip_headers=headers)
