"""Extraction with pyshark over tshark: one capture file -> a stream of :class:`PacketEvent`.

This module runs as a **child process** (``python -m probes.capture_tshark FILE PORT TSHARK
[KEYLOG]``) started by :mod:`probes.capture_files` in its own session, because (CAPTURE-NOTES.md):
pyshark installs an asyncio child watcher that breaks captures in other threads, its sync API
fails inside a running event loop, and a child process bounds memory and can be killed as a
whole process group together with the tshark and tcpdump it starts.

Fastest correct pyshark mode, measured: a BPF prefilter on the port (``tcpdump -r F -w -``)
feeding a ``PipeCapture`` in JSON mode, limited to the needed protocols (``-J``) and to the
frames that carry a fact (display filter below); ``for pkt in cap`` only, nothing kept.

Output protocol on stdout, one line each: ``E <event json>``, ``W <warning>``, ``X <events>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from probes.capture_events import PacketEvent, TlsRecord
from probes.capture_names import certificate_request_names

# Frames that carry a fact: handshake/alert/CCS records, connection setup and teardown,
# retransmissions and (with a key log) decrypted SIP. Encrypted application data is skipped.
DISPLAY_FILTER = ("tls.record.content_type in {20..22} || tcp.flags.syn == 1 || tcp.flags.reset == 1"
                  " || tcp.flags.fin == 1 || tcp.analysis.retransmission || sip")
# "tcp.segments" carries tcp.reassembled.data, where a CertificateRequest spanning segments is read.
PROTOCOLS = "frame ip ipv6 tcp tcp.segments tls sip"


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
        facts["versions"] = [v for v in (_int(x) for x in _all(hs, "tls.handshake.extensions.supported_version"))
                             if v is not None]
        if kind == 2:
            facts["cipher"] = _int(hs.get("tls.handshake.ciphersuite"))
        else:
            sni = _first(hs, "tls.handshake.extensions_server_name")
            facts["sni"] = None if sni is None else str(sni)
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
    flags = {k: _first(tcp, f"tcp.flags.{k}") in ("1", "True", True) for k in ("syn", "ack", "reset", "fin")}
    records, facts = _records(layers.get("tls", []))
    ca_names = None
    if any(13 in r.handshakes for r in records):
        for blob in [*_all(tcp, "tcp.reassembled.data"), *_all(layers, "tcp.reassembled.data"),
                     *_all(tcp, "tcp.payload")]:
            names = certificate_request_names(_hex(blob))
            if names is not None:
                ca_names = tuple(names)
                break
    sip = _one(layers, "sip")
    first_line = headers = None
    if sip is not None:
        first_line = _first(sip, "sip.Status-Line") or _first(sip, "sip.Request-Line")
        headers = _first(sip, "sip.msg_hdr")
    return PacketEvent(
        ts=ts, src=str(ip.get(f"{family}.src")), sport=int(tcp["tcp.srcport"]),
        dst=str(ip.get(f"{family}.dst")), dport=int(tcp["tcp.dstport"]),
        syn=flags["syn"], ack=flags["ack"], rst=flags["reset"], fin=flags["fin"],
        retransmission=bool(_all(tcp, "tcp.analysis.retransmission")),
        records=tuple(records), legacy_version=facts.get("legacy"), versions=tuple(facts["versions"]),
        cipher=facts.get("cipher"), sni=facts.get("sni"), certificates=tuple(facts["certs"]),
        certificate_lengths=tuple(facts["lengths"]), ca_names=ca_names,
        sip_first_line=None if first_line is None else str(first_line),
        sip_headers=None if headers is None else str(headers))


def _packet_layers(pkt: Any) -> dict[str, list[dict[str, Any]]]:
    """pyshark JsonLayer objects -> plain dicts (the layer's own JSON), duplicates kept in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for layer in pkt.layers:
        dicts = [layer._all_fields, *(d._all_fields for d in layer.duplicate_layers)]
        out.setdefault(layer.layer_name, []).extend(d for d in dicts if isinstance(d, dict))
    return out


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


def extract(path: str, port: int, tshark: str, keylog: str | None) -> Iterator[str]:
    """Yield the protocol lines for one file (runs pyshark; call only in the worker process)."""
    from pyshark.capture.capture import TSharkCrashException
    from pyshark.capture.file_capture import FileCapture
    from pyshark.capture.pipe_capture import PipeCapture

    class _Pipe(PipeCapture):  # type: ignore[misc]
        # PipeCapture.close() closes the fd before stopping tshark; when stopping raises, __del__
        # closes it again (EBADF). Close it exactly once.
        def close(self) -> None:
            pipe: int = self._pipe  # type: ignore[has-type]
            if pipe >= 0:
                os.close(pipe)
                self._pipe = -1
            super(PipeCapture, self).close()

    prefs = {"tls.keylog_file": keylog} if keylog else None
    tcpdump, read_fd = _prefilter(path, port)
    params = ["-J", PROTOCOLS]
    if port != 5061:  # tshark dissects SIP over TLS on 5061 only; elsewhere say so explicitly
        params += ["-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},sip"]
    if read_fd is not None:
        cap = _Pipe(pipe=read_fd, use_json=True, display_filter=DISPLAY_FILTER, tshark_path=tshark,
                                  override_prefs=prefs, custom_parameters=params)
    else:  # no tcpdump: let tshark read the file and filter on the port itself (slower)
        cap = FileCapture(path, keep_packets=False, use_json=True, tshark_path=tshark,
                                  display_filter=f"tcp.port == {port} && ({DISPLAY_FILTER})",
                                  override_prefs=prefs, custom_parameters=params)
    count = 0
    try:
        for pkt in cap:
            event = event_from_layers(_packet_layers(pkt), float(pkt.frame_info._all_fields["frame.time_epoch"]))
            if event is not None:
                count += 1
                yield "E " + _dumps(event.to_json())
    except TSharkCrashException as exc:
        yield "W tshark stopped early: " + _last_line(str(exc))
    except KeyError:
        # A header-only stream (no packet passed the prefilter) makes pyshark's JSON parser fail.
        if count:
            raise
    finally:
        try:
            cap.close()
        except TSharkCrashException as exc:  # a damaged file raises again on close (CAPTURE-NOTES.md)
            if count == 0:
                yield "W tshark stopped early: " + _last_line(str(exc))
    if tcpdump is not None:
        stderr = tcpdump.stderr.read().decode("utf-8", "replace") if tcpdump.stderr else ""
        if tcpdump.wait() != 0:
            yield "W capture file is damaged or cut short: " + _last_line(stderr)
    yield f"X {count}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no detail"


def _dumps(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, separators=(",", ":"))


def main(argv: list[str]) -> int:
    """Worker entry point: ``FILE PORT TSHARK [KEYLOG]``; lines on stdout, exit 0 when done."""
    path, port, tshark = argv[0], int(argv[1]), argv[2]
    keylog = argv[3] if len(argv) > 3 else None
    out = sys.stdout
    for line in extract(path, port, tshark, keylog):
        out.write(line + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
