"""Extraction with pyshark over tshark: one capture file -> a stream of :class:`PacketEvent`.

This module runs as a **child process** (``python -m probes.capture.tshark FILE PORT TSHARK
[KEYLOG]``) started by :mod:`probes.capture.files` in its own session,
because (measured with pyshark 0.6 / tshark 4.0.17):
pyshark installs an asyncio child watcher that breaks captures in other threads, its sync API
fails inside a running event loop, and a child process bounds memory and can be killed as a
whole process group together with the tshark and tcpdump it starts.

Fastest correct pyshark mode, measured on the bench capture: a BPF prefilter on the port
(``tcpdump -r F -w -``) feeding a ``PipeCapture`` in JSON mode, limited to the needed tree nodes
(``-j``) and to the frames that carry a fact (display filter below); one ``apply_on_packets``
coroutine streams the packets to a callback and nothing is kept. Hellos, certificates and CA
names are read from the raw handshake bytes rather than from tshark's dissected trees.

Output protocol on stdout, one line each: ``E <event json>``, ``W <warning>``, ``X <events>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from probes.capture.events import PacketEvent, TlsRecord
from probes.capture.records import exact_messages, handshake_messages, segment_records, segment_records_prefix
from probes.tlswire import certificate_list, certificate_request_cas, hello_body_facts

# Frames that carry a fact: handshake/alert/CCS records, connection setup and teardown,
# retransmissions and (with a key log) decrypted SIP. Encrypted application data is skipped.
DISPLAY_FILTER = ("tls.record.content_type in {20..22} || tcp.flags.syn == 1 || tcp.flags.reset == 1"
                  " || tcp.flags.fin == 1 || tcp.analysis.retransmission || sip")
# tshark's -j output filter: only these nodes and their direct fields. Measured on the bench capture,
# -J "tcp tls" (full subtrees: every certificate dissected field by field) made 16 KB of JSON per
# frame and JSON handling dominated the run. "tcp.segments" carries tcp.reassembled.data, where a
# CertificateRequest or hello spanning segments is read.
PROTOCOLS = ("frame ip ipv6 tcp tcp.flags tcp.analysis tcp.analysis.flags tcp.segments tls tls.record tls.handshake"
             " tls.alert_message sip _ws.expert")
# Without a key log everything needed is plaintext on the wire: tshark only filters, reassembles
# and flags retransmissions, and prints these fields (-T json -e: measured ~45% less tshark time
# and half the output of the -j tree); the TLS records are then read from the raw bytes here.
FIELDS = ("frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.flags",
          "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission", "tcp.analysis.spurious_retransmission",
          "tcp.payload", "tcp.reassembled.data")
# With a key log, TLS 1.3 certificates exist only decrypted inside tshark: then ask for them too.
KEYLOG_PROTOCOLS = PROTOCOLS + " tls.handshake.certificates"


def _all(obj: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere under ``obj``, in document order (lists flattened)."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key:
                    found.extend(v if isinstance(v, list) else [v])
                elif isinstance(v, dict | list):
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def _first(obj: Any, key: str) -> Any:
    values = _all(obj, key)
    return values[0] if values else None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value)
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _hex(value: Any) -> bytes:
    return bytes.fromhex(str(value).replace(":", ""))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _records(tls_dicts: list[dict[str, Any]]) -> tuple[list[TlsRecord], dict[str, Any]]:
    records: list[TlsRecord] = []
    facts: dict[str, Any] = {"certs": [], "lengths": [], "versions": []}
    for tls in tls_dicts:
        for rec in _as_list(tls.get("tls.record")):
            if not isinstance(rec, dict):
                continue
            ctype = _int(rec.get("tls.record.content_type")) or _int(rec.get("tls.record.opaque_type")) or 0
            handshakes = []
            for hs in _as_list(rec.get("tls.handshake")):
                if not isinstance(hs, dict) or _int(hs.get("tls.handshake.type")) is None:
                    continue
                kind = _int(hs.get("tls.handshake.type")) or 0
                handshakes.append(kind)
                _handshake_facts(hs, kind, facts)
            level = desc = None
            alert = rec.get("tls.alert_message")
            if isinstance(alert, dict):
                level, desc = _int(alert.get("tls.alert_message.level")), _int(alert.get("tls.alert_message.desc"))
            records.append(TlsRecord(ctype, tuple(handshakes), level, desc))
    return records, facts


def _handshake_facts(hs: dict[str, Any], kind: int, facts: dict[str, Any]) -> None:
    if kind in (1, 2):
        facts["legacy"] = _int(hs.get("tls.handshake.version"))
        if kind == 2:
            facts["cipher"] = _int(hs.get("tls.handshake.ciphersuite"))
    elif kind == 11:
        facts["lengths"].append(_int(hs.get("tls.handshake.certificates_length")) or 0)
        facts["certs"].extend(_hex(c) for c in _all(hs, "tls.handshake.certificate"))


def _one(layers: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any] | None:
    found = layers.get(name)
    return found[0] if found else None


def event_from_layers(layers: dict[str, list[dict[str, Any]]], ts: float) -> PacketEvent | None:
    """Turn one packet's JSON layers (name -> list of layer dicts) into an event (None: not TCP)."""
    tcp = _one(layers, "tcp")
    ip = _one(layers, "ip") or _one(layers, "ipv6")
    if tcp is None or ip is None:
        return None
    family = "ip" if "ip" in layers else "ipv6"
    bits = _int(tcp.get("tcp.flags")) or 0  # FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10
    analysis = tcp.get("tcp.analysis")
    # tshark marks a retransmission only in an expert item below tcp.analysis.flags (hence _ws.expert in -j)
    retransmission = isinstance(analysis, dict) and any(
        _all(analysis, k) for k in ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                                    "tcp.analysis.spurious_retransmission"))
    records, facts = _records(layers.get("tls", []))
    ca_names = None
    kinds = {h for r in records for h in r.handshakes}
    if kinds & {1, 2, 11, 13}:
        messages = _raw_handshakes(layers, tcp)
        hello = next((b for t, b in messages if t in (1, 2)), None)
        if hello is not None and kinds & {1, 2}:
            facts_hello = hello_body_facts(hello, client=1 in kinds)
            facts["versions"] = facts_hello.get("versions", [])
            facts["sni"] = facts_hello.get("sni")
        if 11 in kinds and not facts["certs"]:
            facts["certs"] = _certificates(messages)
        if 13 in kinds:
            ca_names = _ca_names(messages)
    sip = _one(layers, "sip")
    first_line = headers = None
    if sip is not None:
        first_line = _first(sip, "sip.Status-Line") or _first(sip, "sip.Request-Line")
        headers = _first(sip, "sip.msg_hdr")
    return PacketEvent(
        ts=ts, src=str(ip.get(f"{family}.src")), sport=int(tcp["tcp.srcport"]),
        dst=str(ip.get(f"{family}.dst")), dport=int(tcp["tcp.dstport"]),
        syn=bool(bits & 0x02), ack=bool(bits & 0x10), rst=bool(bits & 0x04), fin=bool(bits & 0x01),
        retransmission=retransmission,
        records=tuple(records), legacy_version=facts.get("legacy"), versions=tuple(facts["versions"]),
        cipher=facts.get("cipher"), sni=facts.get("sni"), certificates=tuple(facts["certs"]),
        certificate_lengths=tuple(facts["lengths"]), ca_names=ca_names,
        sip_first_line=None if first_line is None else str(first_line),
        sip_headers=None if headers is None else str(headers))


def _raw_records(blobs: list[bytes]) -> tuple[list[TlsRecord], list[tuple[int, bytes]], list[int]]:
    """TLS records as tshark shows them, plaintext handshake messages and Certificate list lengths."""
    seen: dict[tuple[int, bytes], None] = {}
    records: list[TlsRecord] = []
    messages: list[tuple[int, bytes]] = []
    lengths: list[int] = []
    for blob in blobs:
        encrypted = False  # records after a ChangeCipherSpec in the same bytes are encrypted
        for ctype, body in segment_records_prefix(blob):
            if (ctype, body) in seen:
                continue  # the reassembled PDU and the segment overlap
            seen[(ctype, body)] = None
            if ctype == 20:
                encrypted = True
                records.append(TlsRecord(20))
            elif ctype == 21:
                plain = not encrypted and len(body) == 2 and body[0] in (1, 2)
                records.append(TlsRecord(21, (), body[0], body[1]) if plain else TlsRecord(21))
            elif ctype == 22:
                parsed = None if encrypted else exact_messages(body)
                records.append(TlsRecord(22, tuple(t for t, _ in parsed or ())))
                for kind, message in parsed or ():
                    messages.append((kind, message))
                    if kind == 11:
                        lengths.append(int.from_bytes(message[:3], "big"))
            else:
                records.append(TlsRecord(ctype))
    return records, messages, lengths


def event_from_fields(fields: dict[str, list[str]]) -> PacketEvent | None:
    """Turn one packet's ``-T json -e`` fields into an event, reading TLS from the raw bytes."""
    def one(key: str) -> str | None:
        values = fields.get(key)
        return str(values[0]) if values else None

    src, dst = one("ip.src") or one("ipv6.src"), one("ip.dst") or one("ipv6.dst")
    sport, dport, stamp = one("tcp.srcport"), one("tcp.dstport"), one("frame.time_epoch")
    if src is None or dst is None or sport is None or dport is None or stamp is None:
        return None
    bits = _int(one("tcp.flags")) or 0
    retransmission = any(k in fields for k in FIELDS[8:11])
    # like tshark, do not read TLS again from a retransmitted segment
    blobs = [] if retransmission else [
        _hex(b) for b in (*fields.get("tcp.reassembled.data", ()), *fields.get("tcp.payload", ()))]
    records, messages, lengths = _raw_records(blobs)
    kinds = {t for t, _ in messages}
    hello = next((b for t, b in messages if t in (1, 2)), None)
    facts = hello_body_facts(hello, client=1 in kinds) if hello is not None else {}
    names = _ca_names(messages)
    certs = _certificates(messages)
    return PacketEvent(
        ts=float(stamp), src=src, sport=int(sport), dst=dst, dport=int(dport),
        syn=bool(bits & 0x02), ack=bool(bits & 0x10), rst=bool(bits & 0x04), fin=bool(bits & 0x01),
        retransmission=retransmission,
        records=tuple(records), legacy_version=_opt(facts.get("legacy")),
        versions=tuple(int(v) for v in facts.get("versions", ())),  # type: ignore[attr-defined]
        cipher=_opt(facts.get("cipher")), sni=None if facts.get("sni") is None else str(facts["sni"]),
        certificates=tuple(certs), certificate_lengths=tuple(lengths),
        ca_names=names)


def _certificates(messages: list[tuple[int, bytes]]) -> list[bytes]:
    """The DER list of the first Certificate message (empty when none, or malformed)."""
    body = next((b for t, b in messages if t == 11), None)
    try:
        return [] if body is None else certificate_list(body)
    except ValueError:
        return []


def _ca_names(messages: list[tuple[int, bytes]]) -> tuple[bytes, ...] | None:
    """The CA list of the first (TLS <= 1.2) CertificateRequest; None when none, or malformed."""
    body = next((b for t, b in messages if t == 13), None)
    try:
        return None if body is None else tuple(certificate_request_cas(body))
    except ValueError:
        return None


def _opt(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _raw_handshakes(layers: dict[str, list[dict[str, Any]]], tcp: dict[str, Any]) -> list[tuple[int, bytes]]:
    """Plaintext handshake messages from the frame's bytes: reassembled PDU first, then the segment.

    Reading them here (hellos, certificates, CA names) lets the JSON leave out tshark's dissected
    certificate trees and extension nodes, which measured as most of its output.
    """
    messages: list[tuple[int, bytes]] = []
    for blob in _all(layers.get("tcp.segments", []), "tcp.reassembled.data"):
        data = _hex(blob)
        messages += handshake_messages(segment_records(data))
    for blob in _as_list(tcp.get("tcp.payload")):
        messages += handshake_messages(segment_records(_hex(blob)))
    unique: dict[tuple[int, bytes], None] = dict.fromkeys(messages)
    return list(unique)


def _prefilter(path: str, port: int) -> tuple[subprocess.Popen[bytes] | None, int | None]:
    """Start ``tcpdump -r F -w - 'tcp port P'`` (BPF, in C) and return it with its output fd."""
    tcpdump = shutil.which("tcpdump") or next((p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump")
                                                if os.path.exists(p)), None)
    if tcpdump is None:
        return None, None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([tcpdump, "-r", path, "-w", "-", "-n", f"tcp port {port}"],  # noqa: S603
                            stdout=write_fd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(write_fd)
    return proc, read_fd


def extract(path: str, port: int, tshark: str, keylog: str | None, emit: Callable[[str], None]) -> None:
    """Emit the protocol lines for one file (runs pyshark; call only in the worker process)."""
    from pyshark.capture.capture import TSharkCrashException
    from pyshark.capture.file_capture import FileCapture
    from pyshark.capture.pipe_capture import PipeCapture
    from pyshark.tshark.output_parser.tshark_json import TsharkJsonParser

    class _FastJson(TsharkJsonParser):  # type: ignore[misc]
        # pyshark passes --no-duplicate-keys to tshark and then still decodes with a Python
        # object_pairs_hook meant for duplicate keys, and wraps every field in objects we never
        # read. Measured on the bench: plain json.loads of the layers dict halves the Python time.
        def _parse_single_packet(self, packet: bytes) -> Any:
            return json.loads(packet)["_source"]["layers"]

    class _SignalAware:
        # pyshark raises TSharkCrashException only for a positive exit code: a tshark killed by a
        # signal (negative code) read as a clean, empty capture, and a crash right after EOF raced
        # its check (it killed the still-unreaped process itself). Let the process finish on its
        # own for a moment after EOF and report a death by signal as the crash it is.
        async def _cleanup_subprocess(self, process: Any) -> Any:
            if process.returncode is None and getattr(self, "_eof_reached", False):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), 1.0)
            if process.returncode is not None and process.returncode < 0:
                raise TSharkCrashException(f"tshark (pid {process.pid}) was killed by signal {-process.returncode}")
            return await super()._cleanup_subprocess(process)  # type: ignore[misc]

    class _Pipe(_SignalAware, PipeCapture):  # type: ignore[misc]
        def _setup_tshark_output_parser(self) -> Any:
            return _FastJson(self._get_tshark_version())

        # PipeCapture.close() closes the fd before stopping tshark; when stopping raises, __del__
        # closes it again (EBADF). Close it exactly once.
        def close(self) -> None:
            pipe: int = self._pipe  # type: ignore[has-type]
            if pipe >= 0:
                os.close(pipe)
                self._pipe = -1
            super(PipeCapture, self).close()

    class _File(_SignalAware, FileCapture):  # type: ignore[misc]
        def _setup_tshark_output_parser(self) -> Any:
            return _FastJson(self._get_tshark_version())

    prefs = {"tls.keylog_file": keylog} if keylog else None
    tcpdump, read_fd = _prefilter(path, port)
    params = ["-j", KEYLOG_PROTOCOLS] if keylog else [arg for f in FIELDS for arg in ("-e", f)]
    if port != 5061:  # tshark dissects SIP over TLS on 5061 only; elsewhere say so explicitly
        params += ["-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},sip"]
    if read_fd is not None:
        cap = _Pipe(pipe=read_fd, use_json=True, display_filter=DISPLAY_FILTER, tshark_path=tshark,
                    override_prefs=prefs, custom_parameters=params)
    else:  # no tcpdump: let tshark read the file and filter on the port itself (slower)
        cap = _File(path, keep_packets=False, use_json=True, tshark_path=tshark,
                    display_filter=f"tcp.port == {port} && ({DISPLAY_FILTER})",
                    override_prefs=prefs, custom_parameters=params)
    count = 0
    warned = False

    def on_packet(raw: dict[str, Any]) -> None:
        nonlocal count
        if keylog is None:
            event = event_from_fields(raw)
        else:
            layers = {name: [d for d in _as_list(value) if isinstance(d, dict)] for name, value in raw.items()}
            event = event_from_layers(layers, float(raw["frame"]["frame.time_epoch"]))
        if event is not None:
            count += 1
            emit("E " + _dumps(event.to_json()))

    try:
        # One coroutine for the whole stream, packets handed to the callback and dropped: measured
        # ~2x less Python time than `for pkt in cap`, which runs the event loop once per packet.
        cap.apply_on_packets(on_packet)
    except TSharkCrashException as exc:
        warned = True
        emit("W tshark stopped early: " + _last_line(str(exc)))
    except KeyError:
        # A header-only stream (no packet passed the prefilter) makes pyshark's JSON parser fail.
        if count:
            raise
    finally:
        try:
            cap.close()
        except TSharkCrashException as exc:  # a damaged file raises again on close
            if not warned and (count == 0 or "killed by signal" in str(exc)):
                emit("W tshark stopped early: " + _last_line(str(exc)))
    if tcpdump is not None:
        stderr = tcpdump.stderr.read().decode("utf-8", "replace") if tcpdump.stderr else ""
        if tcpdump.wait() != 0:
            emit("W capture file is damaged or cut short: " + _last_line(stderr))
    emit(f"X {count}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no detail"


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def main(argv: list[str]) -> int:
    """Worker entry point: ``FILE PORT TSHARK [KEYLOG]``; lines on stdout, exit 0 when done."""
    path, port, tshark = argv[0], int(argv[1]), argv[2]
    keylog = argv[3] if len(argv) > 3 else None
    out = sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    extract(path, port, tshark, keylog, emit)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
