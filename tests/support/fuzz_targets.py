"""One boundary function per parser of untrusted bytes, shared by hypothesis and atheris.

Each target feeds arbitrary bytes to a parser exactly as its caller does and swallows only the
exception that caller documents and catches (SipParseError, ValueError, InputError,
XmlApiError...). Anything else escaping is a defect: hypothesis reports it, atheris crashes on it.

Run one harness: ``python -m tests.support.fuzz_run NAME -runs=N`` (libFuzzer flags).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from daemon.lab import pki
from probes import sip, tlswire
from probes.alarms import report as alarms_report
from probes.alarms import snmp as alarms_snmp
from probes.alarms import syslog as alarms_syslog
from probes.alarms import xmlapi as alarms_xmlapi
from probes.capture.analysis import analyse
from probes.capture.events import PacketEvent, TlsRecord
from probes.capture.result import parse_ms_diagnostics as capture_ms_diagnostics
from probes.certificate import load as cert_load
from probes.model import InputError
from probes.mtls import tls as mtls_tls

_SCRATCH = Path(tempfile.mkdtemp(prefix="rmxdiag-fuzz-"))  # under $TMPDIR (pytest gives each run its own)
atexit.register(shutil.rmtree, _SCRATCH, True)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEAF = pki.issue(pki.name("fe01.lab.example"), pki.root_ca("Fuzz Root"))
DER = pki.der(LEAF.cert)


def _cert_msg(tls13: bool) -> bytes:
    entry = len(DER).to_bytes(3, "big") + DER + (b"\0\0" if tls13 else b"")
    body = (b"\0" if tls13 else b"") + len(entry).to_bytes(3, "big") + entry
    return b"\x0b" + len(body).to_bytes(3, "big") + body


def _cr_msg() -> bytes:
    name = LEAF.cert.issuer.public_bytes()
    names = len(name).to_bytes(2, "big") + name
    body = b"\x01\x01" + b"\x00\x02\x04\x01" + len(names).to_bytes(2, "big") + names
    return b"\x0d" + len(body).to_bytes(3, "big") + body


def seeds() -> dict[str, list[bytes]]:
    """Well-formed inputs per target (the committed fixtures and generated certificates)."""
    return {
        "sip_response": [p.read_bytes() for p in sorted((FIXTURES / "probe").glob("*.bin"))],
        "tls_certificate_msg": [_cert_msg(False), _cert_msg(True)],
        "tls_certificate_request": [_cr_msg()],
        "certificate_file": [LEAF.cert_pem, DER, LEAF.pfx(b"fuzz"), LEAF.p7b(), LEAF.key_pem],
        "alarm_files": [p.read_bytes()[:8192] for p in sorted((FIXTURES / "alarms").iterdir())],
        "xml_answer": [b"<RESPONSE_TRANS_MCU><RETURN_STATUS><ID>0</ID><DESCRIPTION>OK</DESCRIPTION></RETURN_STATUS>"
                       b"<ACTION><GET_STATE><MCU_STATE><DESCRIPTION>Major</DESCRIPTION></MCU_STATE>"
                       b"<NUMBER_OF_ACTIVE_ALARMS>2</NUMBER_OF_ACTIVE_ALARMS></GET_STATE></ACTION></RESPONSE_TRANS_MCU>"],
        "capture_events": [bytes(range(256)) * 4],
    }


def sip_response(data: bytes) -> None:
    """SIP framing + parsing of what a Front End sends after the handshake."""
    try:
        length = sip.frame(data)
        if length is not None:
            response = sip.parse_response(data[:length])
            _ = response.diagnostics, response.server
    except sip.SipParseError:
        pass
    sip.parse_ms_diagnostics(data.decode("utf-8", "replace"))


def tls_certificate_msg(data: bytes) -> None:
    """A Certificate handshake message (TLS 1.2 and 1.3 layouts) and its summary."""
    for tls13 in (False, True):
        try:
            ders = tlswire.certificate_list(data[4:], tls13)
        except ValueError:
            continue
        mtls_tls.chain_info(ders[:4], {})


def tls_certificate_request(data: bytes) -> None:
    """A CertificateRequest message and the CA names it lists."""
    for tls13 in (False, True):
        try:
            ders = tlswire.certificate_request_cas(data[4:], tls13)
        except ValueError:
            continue
        mtls_tls.ca_names(ders[:16], {})
    mtls_tls.ca_names([data], {})  # a single DER Name as well


def certificate_file(data: bytes) -> None:
    """Every certificate loader entry (PEM/DER/PFX/P7B sniffing) on a file with these bytes."""
    path = _SCRATCH / "input"
    path.write_bytes(data)
    for password in (None, b"fuzz"):
        try:
            cert_load.load_certificate(path, password)
        except InputError:
            pass
    try:
        cert_load.load_chain(path)
    except InputError:
        pass


def alarm_files(data: bytes) -> None:
    """The saved alarm report, snmptrapd log and syslog parsers (they never raise: skips are counted)."""
    alarms_report.parse_report(data, "fuzz.txt")
    alarms_snmp.parse_snmptrapd(data, "fuzz.log")
    alarms_syslog.parse_syslog(data, "fuzz.log")


def xml_answer(data: bytes) -> None:
    """An RMX XML API answer."""
    try:
        alarms_xmlapi.parse_answer(data)
    except alarms_xmlapi.XmlApiError:
        pass


def _events(data: bytes) -> list[PacketEvent]:
    """Packet events decoded from fuzz bytes: 24-byte frames, the rest as certificate/CA/SIP payloads."""
    events = []
    for offset in range(0, min(len(data), 24 * 64), 24):
        f = data[offset:offset + 24].ljust(24, b"\0")
        fe_side = f[0] & 1
        records = tuple(TlsRecord(20 + f[i] % 4, tuple(b % 25 for b in f[i + 1:i + 3]),
                                  f[i + 3] % 3 or None, f[i + 4] if f[i + 4] % 2 else None)
                        for i in range(8, 8 + 5 * (f[1] % 3), 5))
        blob = data[offset + 24:offset + 24 + f[2]]
        events.append(PacketEvent(
            ts=offset / 24 + f[3] / 256, src="10.0.0.2" if fe_side else "10.0.0.1", sport=5061 if fe_side else 40000,
            dst="10.0.0.1" if fe_side else "10.0.0.2", dport=40000 if fe_side else 5061,
            syn=bool(f[4] & 1), ack=bool(f[4] & 2), rst=bool(f[4] & 4), fin=bool(f[4] & 8),
            retransmission=bool(f[4] & 16), records=records,
            legacy_version=0x0300 | f[5] % 5 if f[5] & 0x80 else None, versions=(0x0300 | f[6] % 5,),
            cipher=int.from_bytes(f[6:8]) if f[7] & 1 else None,
            certificates=(blob,) if f[4] & 32 else (), certificate_lengths=(f[2],) if f[4] & 32 else (),
            ca_names=(blob,) if f[4] & 64 else None,
            sip_first_line=blob.decode("utf-8", "replace") if f[4] & 128 else None,
            sip_headers=blob.decode("latin-1") if f[5] & 1 else None))
    return events


def capture_events(data: bytes) -> None:
    """The pure capture analysis over arbitrary packet events (what a hostile capture can produce)."""
    analyse(_events(data), rmx_issuers=(data[:64],))
    capture_ms_diagnostics(data.decode("latin-1"))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sip_response": sip_response,
    "tls_certificate_msg": tls_certificate_msg,
    "tls_certificate_request": tls_certificate_request,
    "certificate_file": certificate_file,
    "alarm_files": alarm_files,
    "xml_answer": xml_answer,
    "capture_events": capture_events,
}


def main(argv: list[str]) -> None:
    """atheris entry: ``NAME [libFuzzer flags] [corpus dir]``; non-zero exit on the first escaping exception."""
    import atheris  # type: ignore[import-not-found]  # only the fuzz run needs it

    atheris.Setup([argv[0], *argv[2:]], TARGETS[argv[1]])
    atheris.Fuzz()
