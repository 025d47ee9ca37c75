"""Recorded captures through the diagnosis: each alert the one alert table names, a capture cut
with editcap, and the mtls probe and the capture of its own connection diagnosed together.

dumpcap records real peers on loopback (openssl s_server/s_client, the mtls probe itself, a TLS 1.2
relay that flips a byte of the client's real CertificateVerify); nothing is hand-built.
"""

from __future__ import annotations

import datetime as dt
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.diagnosis.diagnose import diagnose
from daemon.lab import pki
from probes.capture import probe as capture
from probes.capture.analysis import CaptureResult
from probes.model import ProbeOutcome
from probes.mtls import probe as mtls
from probes.target import Registrar
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.capture import no_orphans, openssl_client, openssl_server, recording, tcp_server, wait_for_port
from tests.support.mtls import Edit, edit_message, handshake_types
from tests.support.peers import free_port, need

pytestmark = [pytest.mark.peer, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
POOL = "pool.lab.example"


@pytest.fixture(autouse=True)
def _no_orphans_after() -> Iterator[None]:
    yield
    time.sleep(0.2)
    assert no_orphans() == [], "a tshark/dumpcap/worker process outlived the test"


@pytest.fixture(scope="module")
def files(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Given the lab PKI as files: the FE and RMX identities, the FE's trust anchors, an unrelated root."""
    d = tmp_path_factory.mktemp("capture-diagnosed")
    out = {f"fe_{k}": v for k, v in lab_pki.fe.write(d, "fe").items()}
    out |= {f"rmx_{k}": v for k, v in lab_pki.rmx.write(d, "rmx").items()}
    out["trust"] = lab_pki.ca_bundle(d)
    out["other"] = d / "other.pem"
    out["other"].write_bytes(pki.pem(lab_pki.other_root.cert))
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = pki.issue(pki.name(lab_pki.fqdn), lab_pki.issuing, not_before=start,
                        not_after=start + dt.timedelta(days=300)).write(d, "expired")
    out["expired_cert"], out["expired_key"] = expired["cert"], expired["key"]
    out["dir"] = d
    return out


def _server(files: dict[str, Path], *extra: str) -> list[str]:
    return ["-cert", str(files["fe_cert"]), "-key", str(files["fe_key"]), "-cert_chain", str(files["fe_chain"]),
            "-Verify", "2", "-verify_return_error", "-CAfile", str(files["trust"]), *extra]


def _client(files: dict[str, Path], cert: Path | None = None, key: Path | None = None, *extra: str) -> list[str]:
    return ["-cert", str(cert or files["rmx_cert"]), "-key", str(key or files["rmx_key"]), "-cert_chain",
            str(files["rmx_chain"]), *extra]


def _record(files: dict[str, Path], tmp_path: Path, server: list[str], client: list[str],
            relay: peers.RecordHook | None = None) -> tuple[Path, int]:
    port = free_port()
    out = tmp_path / "cap.pcapng"
    with openssl_server(files["dir"], port, *server) as srv:
        wait_for_port(port, proc=srv)
        if relay is None:
            with recording(port, out):
                openssl_client(port, *client)
            return out, port
        with peers.tls12_relay(port, client=relay) as front, recording(front, out):
            openssl_client(front, *client)
        return out, front


def _inspect(path: Path, port: int) -> ProbeOutcome:
    outcome = capture.inspect([path], port, deadline=time.monotonic() + 60)
    assert isinstance(outcome.result, CaptureResult)
    return outcome


def _alerts(outcome: ProbeOutcome) -> list[tuple[int, str]]:
    return [(f.evidence["alert"], f.evidence["direction"]) for f in outcome.findings if f.code == "CAPTURE_TLS_ALERT"]


def _hints(*outcomes: ProbeOutcome) -> list[tuple[str, str, frozenset[str]]]:
    return [(h.code, str(h.severity), frozenset(line.split(":", 1)[0] for line in h.evidence))
            for h in diagnose(outcomes)]


def _flip_certificate_verify(record: bytes) -> Edit | None:
    def flip(body: bytearray) -> None:
        body[-1] ^= 0xFF
    return Edit(forward=edit_message(record, 15, flip)) if 15 in handshake_types(record) else None


@pytest.mark.parametrize(("case", "alert", "code"), [
    ("rmx_does_not_trust_the_fe", (48, "from_rmx"), "REGISTRAR_CERT_UNTRUSTED"),
    ("fe_speaks_only_tls13", (70, "from_fe"), "TLS_VERSION_MISMATCH"),
    ("no_common_cipher", (40, "from_fe"), "TLS_HANDSHAKE_FAILURE"),
    ("rmx_cert_expired", (45, "from_fe"), "CLIENT_CERT_REJECTED"),
    ("certificate_verify_broken", (51, "from_fe"), "CLIENT_CERT_REJECTED"),
])
def test_recorded_alert_lands_where_the_alert_table_says(files: dict[str, Path], tmp_path: Path, case: str,
                                                         alert: tuple[int, str], code: str) -> None:
    """Given a real handshake ending in a fatal alert, recorded by dumpcap, When the capture alone is
    diagnosed, Then the alert (number and sender) lands on the hint the one alert table names, the
    same the mtls probe gives (51 decrypt_error too, which the capture used to leave generic)."""
    server, client = _server(files, "-tls1_2"), _client(files)
    relay = None
    if case == "rmx_does_not_trust_the_fe":
        client = [*client, "-CAfile", str(files["other"]), "-verify_return_error"]
    elif case == "fe_speaks_only_tls13":
        server, client = _server(files, "-tls1_3"), [*client, "-tls1_2"]
    elif case == "no_common_cipher":
        server = _server(files, "-tls1_2", "-cipher", "CAMELLIA256-SHA")
    elif case == "rmx_cert_expired":
        client = _client(files, files["expired_cert"], files["expired_key"])
    else:
        relay = _flip_certificate_verify
    path, port = _record(files, tmp_path, server, client, relay)
    outcome = _inspect(path, port)
    assert alert in _alerts(outcome), [f.message for f in outcome.findings]
    assert _hints(outcome) == [(code, "critical", frozenset({"capture"}))]


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_front_end_that_drops_the_client_hello_is_a_handshake_failure(files: dict[str, Path], tmp_path: Path,
                                                                      how: str) -> None:
    """Given a server that reads the RMX's real ClientHello (openssl s_client) and closes (FIN) or
    resets (RST) without a ServerHello or an alert, recorded by dumpcap, When the capture alone is
    diagnosed, Then TLS_HANDSHAKE_FAILURE, never "OK" (the mtls probe reports the same drop so)."""
    def drop(conn: socket.socket) -> None:
        conn.settimeout(5)
        conn.recv(65536)  # the ClientHello
        if how == "rst":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    out = tmp_path / "drop.pcapng"
    with tcp_server(drop) as port, recording(port, out):
        openssl_client(port, *_client(files))
    outcome = _inspect(out, port)
    assert outcome.result is not None
    if how == "rst":
        assert outcome.result.outcomes == {"closed_after_client_hello": 1}  # type: ignore[attr-defined]
        dropped = [f for f in outcome.findings if f.code == "TLS_HANDSHAKE_FAILURE"]
        assert len(dropped) == 1 and dropped[0].evidence["reason"] == "reset"
    else:
        # OpenSSL answers the FIN with its own fatal decode_error (50): the capture shows that alert.
        assert outcome.result.outcomes == {"alert": 1}  # type: ignore[attr-defined]
        assert _alerts(outcome) == [(50, "from_rmx")]
    assert _hints(outcome) == [("TLS_HANDSHAKE_FAILURE", "critical", frozenset({"capture"}))]


def test_capture_cut_with_editcap_is_partial_never_ok(files: dict[str, Path], tmp_path: Path) -> None:
    """Given a healthy recorded handshake cut by editcap after the ClientHello (a capture stopped too
    early: the file itself is intact), When inspected and diagnosed, Then CAPTURE_INCOMPLETE at
    warning, and the CLI exits 1 with that hint and its fix instead of "OK"."""
    editcap = need("editcap")
    path, port = _record(files, tmp_path, _server(files, "-tls1_2"), _client(files))
    # The recording also holds the UDP markers that told it dumpcap was running: keep the TCP
    # packets only, then the first four of them (SYN, SYN/ACK, ACK, ClientHello).
    tcp_only, cut = tmp_path / "tcp.pcapng", tmp_path / "cut.pcapng"
    subprocess.run([need("tshark"), "-r", str(path), "-Y", f"tcp.port == {port}", "-w", str(tcp_only)],
                   check=True, capture_output=True, timeout=30)
    subprocess.run([editcap, "-r", str(tcp_only), str(cut), "1-4"], check=True, capture_output=True, timeout=30)
    outcome = _inspect(cut, port)
    assert outcome.result is not None and outcome.result.outcomes == {"incomplete": 1}  # type: ignore[attr-defined]
    assert _hints(outcome) == [("CAPTURE_INCOMPLETE", "warning", frozenset({"capture"}))]
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "pcap", str(cut), "--port", str(port)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 1, done.stdout
    assert "WARNING: " in done.stdout and "[CAPTURE_INCOMPLETE]" in done.stdout and "OK: " not in done.stdout
    assert "Capture again for longer" in done.stdout
    # And the whole capture of the same handshake reads as healthy (the cut is what made it partial)
    assert _hints(_inspect(path, port)) == []


def _probe_recorded(spec: mtls.ClientSpec, port: int, out: Path, sni: str = POOL) -> ProbeOutcome:
    with recording(port, out):
        outcome = mtls.probe([Registrar(host="127.0.0.1", port=port, sni=sni, sip_options=False,
                                        tls_min=spec.tls_min, tls_max=spec.tls_max)], spec,
                             deadline=time.monotonic() + 3)
    return outcome


def test_name_mismatch_seen_by_the_probe_and_its_capture_is_one_hint(files: dict[str, Path], tmp_path: Path,
                                                                     lab_pki: LabPKI) -> None:
    """Given the mtls probe refusing an FE certificate without the pool name (we send 42) while
    dumpcap records that very connection, When both are diagnosed, Then one
    REGISTRAR_CERT_NAME_MISMATCH citing both probes: the capture's alert 42 from the RMX joins it
    instead of becoming REGISTRAR_CERT_UNTRUSTED."""
    spec = mtls.ClientSpec(cert=files["rmx_cert"], key=files["rmx_key"], chain=files["rmx_chain"],
                           ca_bundle=files["trust"], tls_max="1.2")
    with peers.s_server(files["dir"], lab_pki.fe, ["-tls1_2"], verify_ca=files["trust"]) as port:
        probe = _probe_recorded(spec, port, tmp_path / "mismatch.pcapng", sni="elsewhere.lab.example")
    recorded = _inspect(tmp_path / "mismatch.pcapng", port)
    assert (42, "from_rmx") in _alerts(recorded)
    assert _hints(probe, recorded) == [("REGISTRAR_CERT_NAME_MISMATCH", "critical", frozenset({"mtls", "capture"}))]


def test_our_policy_and_its_capture_stay_a_local_policy_hint(files: dict[str, Path], tmp_path: Path,
                                                             lab_pki: LabPKI) -> None:
    """Given the mtls probe refusing a 1024-bit DH group (alert 40 from us) while dumpcap records it,
    When both are diagnosed, Then one TLS_LOCAL_POLICY citing both, not TLS_HANDSHAKE_FAILURE. Its
    severity is the capture's: a capture shows the RMX side refusing the same offer, which breaks
    the link (the probe's finding alone is a warning, see test_diagnosis_real_peers.py)."""
    dh = files["dir"] / "dh1024.pem"
    if not dh.exists():
        subprocess.run(["openssl", "dhparam", "-out", str(dh), "1024"], check=True, capture_output=True, timeout=120)
    spec = mtls.ClientSpec(cert=files["rmx_cert"], key=files["rmx_key"], chain=files["rmx_chain"],
                           ca_bundle=files["trust"])
    extra = ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", "-dhparam", str(dh)]
    with peers.s_server(files["dir"], lab_pki.fe, extra, verify_ca=files["trust"]) as port:
        probe = _probe_recorded(replace(spec, tls_max="1.2"), port, tmp_path / "dh.pcapng")
    recorded = _inspect(tmp_path / "dh.pcapng", port)
    assert (40, "from_rmx") in _alerts(recorded)
    assert _hints(probe) == [("TLS_LOCAL_POLICY", "warning", frozenset({"mtls"}))]
    assert _hints(probe, recorded) == [("TLS_LOCAL_POLICY", "critical", frozenset({"mtls", "capture"}))]
