"""`rmxdiag pcap` on captures in the forms administrators send, made here with the real tools.

Wireshark's own test captures are not reachable from this machine (no network), so each case is
recorded with openssl s_server/s_client (or a scripted client) on loopback by dumpcap and turned
into the other forms with mergecap, editcap (netmon2, modified pcap, --inject-secrets) and gzip.
Every test cross-checks what rmxdiag reports against tshark's own fields on the same file.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.diagnosis.diagnose import diagnose
from daemon.lab import pki
from probes.capture import probe as capture
from probes.capture.formats import pcapng_layout, plan
from probes.capture.result import CaptureResult, ConnectionSummary
from probes.model import ProbeOutcome
from tests.support.capture import (
    no_orphans_after,  # noqa: F401 (fixture)
    openssl_client,
    openssl_server,
    recording,
    wait_for_port,
)
from tests.support.peers import free_port, need

pytestmark = [pytest.mark.peer("tshark", "tcpdump", "mergecap", "editcap"), pytest.mark.slow,
              pytest.mark.usefixtures("no_orphans_after")]

ROOTS = 300  # a Front End trusting this many roots sends a CA list of ~29 KB: over one 16 KB record


@dataclass
class Lab:
    dir: Path
    rmx: dict[str, Path]
    fe: dict[str, Path]
    trust: Path  # root + issuing CA
    other: Path  # an unrelated root
    many: Path  # ROOTS unrelated roots, not the RMX's
    issuer_der: bytes  # the RMX certificate's issuer name


@pytest.fixture(scope="module")
def lab(lab_pki: object, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """Given the lab PKI written for openssl, and a trust store of a few hundred unrelated roots."""
    d = tmp_path_factory.mktemp("real-inputs")
    p = lab_pki
    trust = d / "trust.pem"
    trust.write_bytes(pki.pem(p.root.cert) + pki.pem(p.issuing.cert))  # type: ignore[attr-defined]
    other = d / "other.pem"
    other.write_bytes(pki.pem(p.other_root.cert))  # type: ignore[attr-defined]
    many = d / "many.pem"
    many.write_bytes(b"".join(pki.pem(pki.root_ca(f"Enterprise Trusted Root Certification Authority {i:04d}").cert)
                              for i in range(ROOTS)))
    return Lab(d, p.rmx.write(d, "rmx"), p.fe.write(d, "fe"), trust, other, many,  # type: ignore[attr-defined]
               p.issuing.cert.subject.public_bytes())  # type: ignore[attr-defined]


def _server_args(lab: Lab, *extra: str) -> list[str]:
    return ["-cert", str(lab.fe["cert"]), "-key", str(lab.fe["key"]), "-cert_chain", str(lab.fe["chain"]), *extra]


def _client_cert(lab: Lab) -> list[str]:
    return ["-cert", str(lab.rmx["cert"]), "-key", str(lab.rmx["key"]), "-cert_chain", str(lab.rmx["chain"]),
            "-CAfile", str(lab.trust)]


def _record(lab: Lab, out: Path, server: list[str], client: list[str], also: str | None = None) -> int:
    """One openssl client connection to an openssl server, recorded by dumpcap; the port."""
    port = free_port()
    with openssl_server(lab.dir, port, *_server_args(lab, *server)) as srv:
        wait_for_port(port, proc=srv)  # its probe connection happens before the recording starts
        with recording(port, out, also=also):
            openssl_client(port, *client)
    return port


def _inspect(path: Path, port: int, **kw: object) -> tuple[ProbeOutcome, CaptureResult]:
    outcome = capture.inspect([path], port, deadline=time.monotonic() + 120, **kw)  # type: ignore[arg-type]
    assert isinstance(outcome.result, CaptureResult)
    return outcome, outcome.result


def _handshakes(result: CaptureResult) -> list[ConnectionSummary]:
    return [s for s in result.summaries if s.outcome != "not_tls"]


def _tshark(path: Path, port: int, display_filter: str, *fields: str, keylog: Path | None = None) -> list[list[str]]:
    """tshark's own field values (one list per frame) for the cross-checks."""
    argv = [need("tshark"), "-n", "-r", str(path), "-d", f"tcp.port=={port},tls", "-Y", display_filter,
            "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    if keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    for field in fields:
        argv += ["-e", field]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def _codes(outcome: ProbeOutcome) -> set[str]:
    return {f.code for f in outcome.findings}


def _syn_count(path: Path, port: int) -> int:
    return len(_tshark(path, port, f"tcp.port == {port} && tcp.flags.syn == 1 && tcp.flags.ack == 0", "frame.number"))


# --- handshake messages spread over several TLS records ---------------------------------------


def test_certificate_request_over_16kb_is_read_and_an_empty_answer_named(lab: Lab, tmp_path: Path) -> None:
    """Given a Front End trusting a few hundred roots (its CA list over one record) and an RMX without a
    certificate, When the capture is inspected, Then the CertificateRequest is read whole, the RMX issuer
    is missing from it, and the root cause is the empty client certificate, not a cipher problem."""
    out = tmp_path / "calist.pcapng"
    port = _record(lab, out, ["-Verify", "2", "-CAfile", str(lab.many), "-verifyCAfile", str(lab.trust),
                              "-tls1_2"], ["-CAfile", str(lab.trust)])
    outcome, result = _inspect(out, port, rmx_issuers=[lab.issuer_der])
    (summary,) = _handshakes(result)
    before_ccs = summary.history[:summary.history.index("C:ChangeCipherSpec")]
    assert "S:CertificateRequest" in before_ccs and "S:EncryptedHandshake" not in before_ccs
    assert "C:Certificate(empty)" in summary.history
    assert summary.ca_names is not None and len(summary.ca_names) == ROOTS
    assert summary.rmx_issuer_in_ca_list is False
    # tshark agrees: one CertificateRequest reassembled from several records, holding as many bytes of names
    (request,) = _tshark(out, port, "tls.handshake.type == 13", "tls.handshake.dnames_len", "tls.handshake.fragment")
    assert int(request[0]) > 16384 and len(request[1].split(",")) >= 2
    names = capture_names(out, port)
    assert sum(2 + len(n) for n in names) == int(request[0])
    assert {"CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_EMPTY_CLIENT_CERT"} <= _codes(outcome)
    hints = [h.code for h in diagnose([outcome])]
    assert hints[0] == "CAPTURE_EMPTY_CLIENT_CERT" and "TLS_HANDSHAKE_FAILURE" not in hints


def capture_names(path: Path, port: int) -> list[bytes]:
    """The DER CA names the worker extracted (the events, as the analysis receives them)."""
    from probes.capture.files import find_tshark, stream_events

    names: list[bytes] = []
    for item in stream_events(path, port, find_tshark(), None, time.monotonic() + 60):
        assert not isinstance(item, str), item
        names += item.ca_names or ()
    return names


def test_client_hello_split_over_records(lab: Lab, tmp_path: Path) -> None:
    """Given an RMX whose ClientHello (a long ALPN list) is cut into 512-byte records, When inspected, Then
    the hello is read whole: SNI and offered versions as tshark shows them after reassembly."""
    alpn = ",".join(f"sip-over-tls-{i:03d}-padding-to-make-the-client-hello-long" for i in range(30))
    out = tmp_path / "split-hello.pcapng"
    port = _record(lab, out, ["-Verify", "2", "-CAfile", str(lab.trust), "-tls1_2"],
                   [*_client_cert(lab), "-max_send_frag", "512", "-alpn", alpn, "-servername", "pool.lab.example"])
    _, result = _inspect(out, port)
    (summary,) = _handshakes(result)
    assert summary.outcome == "ok" and summary.history[2] == "C:ClientHello"
    (hello,) = _tshark(out, port, "tls.handshake.type == 1", "tls.record.length",
                       "tls.handshake.extensions_server_name", "tls.handshake.extensions.supported_version")
    assert len(hello[0].split(",")) >= 2  # tshark: one ClientHello over several records
    assert summary.sni == hello[1] == "pool.lab.example"
    assert summary.offered_versions == tuple({0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1",
                                              0x0301: "TLSv1.0"}[int(v, 16)] for v in hello[2].split(","))


# --- the forms captures arrive in -----------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Given a capture of one healthy TLS 1.2 MTLS handshake (CA list, both chains)."""
    out = tmp_path_factory.mktemp("healthy") / "healthy.pcapng"
    return out, _record(lab, out, ["-Verify", "2", "-verify_return_error", "-CAfile", str(lab.trust), "-tls1_2"],
                        _client_cert(lab))


def _same_reading(a: CaptureResult, b: CaptureResult) -> None:
    assert [s.to_json() for s in a.summaries] == [s.to_json() for s in b.summaries]
    assert (a.connections, a.outcomes, a.warnings) == (b.connections, b.outcomes, b.warnings)


def _nflog(pcap: Path, out: Path) -> None:
    """Rewrap each IPv4 packet of an Ethernet pcap as Linux NFLOG (what ``dumpcap -i nflog`` records)."""
    data = pcap.read_bytes()
    header = bytearray(data[:24])
    struct.pack_into("<I", header, 20, 239)  # LINKTYPE_NFLOG
    body, pos = bytearray(header), 24
    while pos + 16 <= len(data):
        sec, usec, size, _ = struct.unpack("<IIII", data[pos:pos + 16])
        packet = data[pos + 16 + 14:pos + 16 + size]  # without the Ethernet header
        pos += 16 + size
        tlv = struct.pack("<HH", 4 + len(packet), 9) + packet  # NFULA_PAYLOAD
        record = bytes([2, 0, 0, 0]) + tlv + b"\0" * (-len(tlv) % 4)  # AF_INET, version 0, group 0
        body += struct.pack("<IIII", sec, usec, len(record), len(record)) + record
    out.write_bytes(body)


@pytest.mark.parametrize(("form", "prefiltered"), [("gzip", False), ("netmon2", False), ("nflog", False),
                                                   ("modpcap", True)])
def test_other_formats_read_like_the_original(healthy: tuple[Path, int], tmp_path: Path, form: str,
                                              prefiltered: bool) -> None:
    """Given the capture gzip-compressed, as Network Monitor 2 (.cap, what Windows administrators
    capture with), as Linux NFLOG (libpcap cannot filter it) or as modified pcap, When inspected,
    Then tshark reads it directly wherever the prefilter cannot, and the result is exactly the original's."""
    original, port = healthy
    converted = tmp_path / f"healthy.{form}"
    editcap = need("editcap")
    if form == "gzip":
        converted.write_bytes(gzip.compress(original.read_bytes()))
    elif form == "nflog":
        subprocess.run([editcap, "-F", "pcap", str(original), str(tmp_path / "plain.pcap")], check=True, timeout=30)
        _nflog(tmp_path / "plain.pcap", converted)
    else:
        subprocess.run([editcap, "-F", form, str(original), str(converted)], check=True, timeout=30)
    assert plan(original, port, shutil.which("tcpdump")).prefilter
    assert plan(converted, port, shutil.which("tcpdump")).prefilter is prefiltered
    _, reference = _inspect(original, port)
    _, result = _inspect(converted, port)
    _same_reading(reference, result)
    assert [s.outcome for s in _handshakes(result)] == ["ok"]
    assert result.connections == _syn_count(converted, port) == 1


def test_two_interfaces_and_merged_captures(lab: Lab, tmp_path: Path) -> None:
    """Given a capture on two interfaces (lo and Linux 'any': two link types) and mergecap's output of
    two captures keeping both interfaces, When inspected, Then every connection is read (as many as
    tshark counts SYNs), without a false 'damaged' warning."""
    two = tmp_path / "two-if.pcapng"
    args = (["-Verify", "2", "-CAfile", str(lab.trust), "-tls1_2"], _client_cert(lab))
    port_a = _record(lab, two, *args, also="any")
    assert len(set(pcapng_layout(two).link_types)) == 2
    outcome, result = _inspect(two, port_a)
    assert result.connections == _syn_count(two, port_a) == 1 and not result.warnings
    assert [s.outcome for s in _handshakes(result)] == ["ok"]
    assert "CAPTURE_INCOMPLETE" not in _codes(outcome)
    # mergecap keeping both inputs' interfaces (-I none), on one port so both connections count
    port = free_port()
    parts = []
    with openssl_server(lab.dir, port, *_server_args(lab, *args[0])) as srv:
        wait_for_port(port, proc=srv)
        for n in range(2):
            parts.append(tmp_path / f"part{n}.pcapng")
            with recording(port, parts[-1]):
                openssl_client(port, *args[1])
    merged = tmp_path / "merged.pcapng"
    subprocess.run([need("mergecap"), "-I", "none", "-w", str(merged), *map(str, parts)], check=True, timeout=30)
    assert len(pcapng_layout(merged).link_types) == 2
    _, result = _inspect(merged, port)
    assert result.connections == _syn_count(merged, port) == 2 and not result.warnings
    assert [s.outcome for s in _handshakes(result)] == ["ok", "ok"]


# --- decryption -----------------------------------------------------------------------------------


def test_tls13_decrypted_with_key_log_or_embedded_secrets(lab: Lab, tmp_path: Path) -> None:
    """Given a TLS 1.3 handshake whose client certificate the Front End refuses (unknown CA), recorded with
    the client's key log, When inspected without secrets, with the key log, and with the secrets
    embedded in the pcapng (a Decryption Secrets Block), Then without secrets it stays tls13_encrypted,
    and both decrypted readings show the real messages and the fatal unknown_ca alert, as tshark does."""
    keys = tmp_path / "keys.txt"
    out = tmp_path / "t13.pcapng"
    port = _record(lab, out, ["-Verify", "2", "-verify_return_error", "-CAfile", str(lab.other), "-tls1_3"],
                   [*_client_cert(lab), "-keylogfile", str(keys)])
    embedded = tmp_path / "t13-dsb.pcapng"
    subprocess.run([need("editcap"), "--inject-secrets", f"tls,{keys}", str(out), str(embedded)],
                   check=True, timeout=30)
    assert pcapng_layout(embedded).secrets == 1
    _, plain = _inspect(out, port)
    assert [s.outcome for s in _handshakes(plain)] == ["tls13_encrypted"]
    with_keys, by_keylog = _inspect(out, port, keylog=keys)
    with_dsb, by_dsb = _inspect(embedded, port)
    _same_reading(by_keylog, by_dsb)
    (summary,) = _handshakes(by_dsb)
    assert summary.outcome == "alert" and summary.alerts[0]["alert"] == 48
    for message in ("S:EncryptedExtensions", "S:CertificateRequest", "C:Certificate", "C:Finished"):
        assert message in summary.history
    assert summary.client_chain[0][0] == "CN=rmx.lab.example,O=rmxdiag lab"
    assert summary.ca_names == ("CN=Unrelated Root CA,O=rmxdiag lab",)  # TLS 1.3 certificate_authorities
    # tshark, given the same key log, sees the same alert from the server
    alerts = _tshark(out, port, "tls.alert_message.desc", "tcp.srcport", "tls.alert_message.desc", keylog=keys)
    assert next(a[1] for a in alerts if a[0] == str(port)) == "48"
    assert "CAPTURE_TLS_ALERT" in _codes(with_keys) and "CAPTURE_TLS_ALERT" in _codes(with_dsb)


def test_tls13_healthy_handshake_decrypted_is_ok(lab: Lab, tmp_path: Path) -> None:
    """Given a healthy TLS 1.3 MTLS handshake and its key log, When inspected with it, Then it is ok (not
    tls13_encrypted) and the decrypted client chain is named."""
    keys = tmp_path / "keys.txt"
    out = tmp_path / "t13-ok.pcapng"
    port = _record(lab, out, ["-Verify", "2", "-verify_return_error", "-CAfile", str(lab.trust), "-tls1_3"],
                   [*_client_cert(lab), "-keylogfile", str(keys)])
    _, result = _inspect(out, port, keylog=keys)
    (summary,) = _handshakes(result)
    assert summary.outcome == "ok" and summary.version == "TLSv1.3"
    assert summary.client_chain[0][0] == "CN=rmx.lab.example,O=rmxdiag lab"


def _sslv2_hello(port: int) -> bytes:
    """Send an SSLv2-format ClientHello offering TLS 1.2 (what old stacks send), return the answer."""
    specs = bytes.fromhex("00009c00002f000035")  # RSA key exchange suites: no extensions needed
    challenge = os.urandom(16)
    body = (b"\x01\x03\x03" + len(specs).to_bytes(2, "big") + b"\x00\x00" + len(challenge).to_bytes(2, "big")
            + specs + challenge)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall((0x8000 | len(body)).to_bytes(2, "big") + body)
        sock.settimeout(3)
        while len(answer) < 5 or len(answer) < 5 + int.from_bytes(answer[3:5], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_sslv2_format_client_hello_starts_the_history(lab: Lab, tmp_path: Path) -> None:
    """Given a client sending a real SSLv2-format ClientHello, When inspected, Then the history starts with
    that ClientHello (offering TLS 1.2), as tshark's SSLv2 record shows, and the server's answer follows."""
    port = free_port()
    out = tmp_path / "sslv2.pcapng"
    with openssl_server(lab.dir, port, *_server_args(lab, "-tls1_2", "-cipher", "DEFAULT:@SECLEVEL=0")) as srv:
        wait_for_port(port, proc=srv)
        with recording(port, out):
            answer = _sslv2_hello(port)
    assert answer[:1] == b"\x16"  # the server answered with a TLS handshake record
    _, result = _inspect(out, port)
    (summary,) = _handshakes(result)
    assert summary.history[:4] == ("C:SYN", "S:SYN-ACK", "C:ClientHello", "S:ServerHello")
    assert summary.offered_versions == ("TLSv1.2",)
    (hello,) = _tshark(out, port, "tls.handshake.type == 1", "_ws.col.Protocol", "tls.handshake.version")
    assert hello == ["SSLv2", "0x0303"]
