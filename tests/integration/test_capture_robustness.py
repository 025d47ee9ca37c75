"""`rmxdiag pcap` robustness: damaged and bad inputs, a hanging or flooding tshark, rotation, live capture."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daemon.engine import run_probe
from probes.capture import probe as capture
from probes.capture.analysis import CaptureResult
from probes.model import ErrorKind, InputError
from tests.support.capture import (
    no_orphans,
    no_orphans_after,  # noqa: F401 (fixture)
    python_client,
    recording,
    tcp_server,
)
from tests.support.peers import need_capture, without_privilege

pytestmark = [pytest.mark.peer("tshark"), pytest.mark.slow, pytest.mark.usefixtures("no_orphans_after")]
ROOT = Path(__file__).resolve().parents[2]


def _tls_server(lab_pki: object, tmp: Path) -> ssl.SSLContext:
    paths = lab_pki.fe.write(tmp, "fe")  # type: ignore[attr-defined]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 hides whether the handshake ended well
    ctx.load_cert_chain(paths["cert"], paths["key"])
    return ctx


def _handshakes(lab_pki: object, tmp: Path, out: Path, count: int) -> int:
    """Record ``count`` complete TLS handshakes on a fresh port; return the port."""
    ctx = _tls_server(lab_pki, tmp)

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(100)

    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with tcp_server(handler) as port, recording(port, out):
        for _ in range(count):
            python_client(port, client, b"x")
    return port


@pytest.fixture(scope="module")
def healthy(lab_pki: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Given a real capture with 6 complete handshakes."""
    tmp = tmp_path_factory.mktemp("healthy")
    out = tmp / "healthy.pcapng"
    return out, _handshakes(lab_pki, tmp, out, 6)


def _rmxdiag(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", "pcap", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, check=False)


def test_truncated_capture_gives_results_and_a_warning(healthy: tuple[Path, int], tmp_path: Path) -> None:
    # Given a real dumpcap capture of healthy handshakes, cut in the middle of a packet (head -c)
    path, port = healthy
    cut = tmp_path / "cut.pcapng"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    # When inspected
    outcome = capture.inspect([cut], port, deadline=time.monotonic() + 60)
    # Then the connections before the cut are analysed and the damage is a warning
    assert isinstance(outcome.result, CaptureResult)
    assert 1 <= outcome.result.connections < 6
    assert outcome.result.warnings and "cut short" in outcome.result.warnings[0]
    assert "CAPTURE_INCOMPLETE" in {f.code for f in outcome.findings}
    # And the CLI never says OK: exit 1 (partial result), the CAPTURE_INCOMPLETE hint with its fix, not 3
    done = _rmxdiag(str(cut), "--port", str(port))
    assert done.returncode == 1, done.stdout
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("OK: ", "WARNING: ", "CRITICAL: "))]
    assert len(verdicts) == 1 and verdicts[0].startswith("WARNING: ")
    assert verdicts[0].split(" | ")[0].endswith("[CAPTURE_INCOMPLETE]") and done.stdout.startswith(verdicts[0])
    assert "Capture again for longer" in done.stdout


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "empty file"),
    (b"this is not a capture at all\n" * 10, "not a capture file tshark can read"),
    (bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"), "holds no packets"),
    # Wireshark opens a PEM file (RFC 7468) as one pseudo-frame: still no capture
    (b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ4eXQ0Yk\n-----END CERTIFICATE-----\n",
     "not a capture file tshark can read"),
])
def test_bad_files_exit_3_with_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    # Given an empty file, a text file, a header-only pcap
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    # When inspected by the CLI
    result = _rmxdiag(str(bad))
    # Then one line naming the file and the problem, exit 3
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and str(bad) in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_key_log_that_is_not_a_regular_file_is_named_so(healthy: tuple[Path, int], tmp_path: Path) -> None:
    """Given --keylog naming a device, a directory and a missing file
    When the capture is read
    Then each is one line saying what it is: not a regular file, a directory, or missing."""
    path, port = healthy
    for keylog, said in (("/dev/zero", "not a regular file (expected a key log)"),
                         (str(tmp_path), "is a directory, expected a key log"),
                         (str(tmp_path / "none.log"), "key log does not exist")):
        result = _rmxdiag(str(path), "--port", str(port), "--keylog", keylog)
        assert result.returncode == 3 and result.stderr == f"rmxdiag: error: {keylog}: {said}\n"


def test_missing_file_and_empty_directory_exit_3(tmp_path: Path) -> None:
    # Given a path that does not exist and a directory without captures
    (tmp_path / "notes.txt").write_text("no capture here")
    for arg, expected in ((str(tmp_path / "nope.pcap"), "no such file"), (str(tmp_path), "no capture file")):
        result = _rmxdiag(arg)
        assert result.returncode == 3 and expected in result.stderr and result.stderr.count("\n") == 1


def _fake_tshark(tmp_path: Path, body: str, version: str = "4.0.17") -> dict[str, str]:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    script = fake / "tshark"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-v" ]; then echo "TShark (Wireshark) {version}"; exit 0; fi\n{body}\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}


@pytest.mark.parametrize("body", ["exec sleep 300", "exec yes '[{\"_source\": {\"layers\": {'"])
def test_hanging_or_flooding_tshark_is_bounded_and_killed(healthy: tuple[Path, int], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    # Given a fake tshark first on PATH that hangs or floods its output
    env = _fake_tshark(tmp_path, body)
    monkeypatch.setenv("PATH", env["PATH"])
    path, port = healthy
    # When inspected with a 3 s deadline
    start = time.monotonic()
    outcome = capture.inspect([path], port, deadline=time.monotonic() + 3)
    # Then it returns soon after the deadline with a warning, and nothing is left running
    assert time.monotonic() - start < 10
    assert isinstance(outcome.result, CaptureResult)
    assert any("deadline" in w or "stopped" in w for w in outcome.result.warnings)
    assert no_orphans() == []


@pytest.mark.parametrize(("version", "expected"), [("2.6.10", "too old"), (None, "not installed")])
def test_tshark_missing_or_too_old_names_the_package(healthy: tuple[Path, int], tmp_path: Path,
                                                      version: str | None, expected: str) -> None:
    # Given PATH with an old fake tshark, or with no tshark at all
    if version is None:
        empty = tmp_path / "empty"
        empty.mkdir()
        env = {**os.environ, "PATH": str(empty)}
    else:
        env = _fake_tshark(tmp_path, "exit 0", version)
    # When the CLI runs
    result = _rmxdiag(str(healthy[0]), env=env)
    # Then one line naming the Debian package, exit 3
    assert result.returncode == 3 and expected in result.stderr and "'tshark'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_directory_of_rotated_captures(lab_pki: object, tmp_path: Path) -> None:
    # Given two rotated capture files of the same port and an unrelated file in one directory
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    port = _handshakes(lab_pki, tmp_path, rotated / "sip_00001.pcapng", 2)
    ctx = _tls_server(lab_pki, tmp_path)

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(100)

    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with tcp_server(handler, port) as same, recording(same, rotated / "sip_00002.pcapng"):
        for _ in range(3):
            python_client(same, client, b"x")
    (rotated / "README").write_text("not a capture")
    # When the directory is inspected
    outcome = capture.inspect([rotated], port, deadline=time.monotonic() + 60)
    # Then both files are read in rotation order and every connection is counted
    assert isinstance(outcome.result, CaptureResult)
    assert [Path(f).name for f in outcome.result.files] == ["sip_00001.pcapng", "sip_00002.pcapng"]
    assert outcome.result.connections == 5 and outcome.result.outcomes == {"ok": 5}


def test_cli_text_and_json(healthy: tuple[Path, int]) -> None:
    # Given a healthy capture
    path, port = healthy
    # When the CLI prints text and JSON
    text = _rmxdiag(str(path), "--port", str(port))
    doc = _rmxdiag(str(path), "--port", str(port), "--format", "json")
    # Then text starts with the verdict, then what the capture probe found: the connection lines and
    # the counts; JSON carries the result
    lines = text.stdout.splitlines()
    assert text.returncode == 0 and lines[0].startswith(f"OK: {path}: no problem found | 'capture_seconds'=")
    connections = [line.strip() for line in lines if line.strip().startswith("127.0.0.1:")]
    assert len(connections) == 6 and all(": ok, TLSv1.2:" in line for line in connections)
    assert any(line.strip().startswith("6 connection(s) on port") for line in lines)
    import json

    report = json.loads(doc.stdout)
    result = report["targets"][0]["probes"][0]["result"]
    assert result["connections"] == 6 and result["outcomes"] == {"ok": 6}


def test_live_capture(lab_pki: object, tmp_path: Path) -> None:
    # Given handshakes running on a loopback port while `rmxdiag pcap --interface lo` captures it
    need_capture()
    ctx = _tls_server(lab_pki, tmp_path)

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(100)

    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with tcp_server(handler) as port:
        stop = threading.Event()

        def traffic() -> None:  # from the start: handshakes before dumpcap runs are simply not seen
            while not stop.is_set():
                python_client(port, client, b"x")
                time.sleep(0.3)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            result = _rmxdiag("--interface", "lo", "--duration", "4", "--port", str(port), "--format", "json")
        finally:
            stop.set()
            thread.join(5)
    # Then the captured handshakes are analysed
    import json

    assert result.returncode == 0, [ln for ln in result.stdout.splitlines() if "history" in ln or "message" in ln]
    probe = json.loads(result.stdout)["targets"][0]["probes"][0]
    assert probe["result"]["outcomes"].get("ok", 0) >= 1


def test_live_capture_without_privilege_names_the_capability() -> None:
    # Given a process without CAP_NET_RAW (root drops it from its bounding set; others lack it)
    argv = without_privilege([sys.executable, "-m", "daemon.cli", "pcap", "--interface", "lo", "--duration", "1"],
                             "net_raw", "net_admin")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    # Then exit 3 with the missing capability and the drop-in that grants it
    assert result.returncode == 3
    assert "CAP_NET_RAW is missing" in result.stderr
    assert "systemd/rmxdiag.service.d/capture.conf" in result.stderr
    assert "AmbientCapabilities=CAP_NET_RAW" in result.stderr


def test_permission_kind_from_the_probe() -> None:
    # Given the direct entry point and a bogus interface name
    with pytest.raises(InputError) as info:
        capture.inspect_live("no-such-if0", 1.0, deadline=time.monotonic() + 20)
    # Then the failure is a bad input naming the interface (root here, so not a permission problem)
    assert info.value.kind in (ErrorKind.BAD_INPUT, ErrorKind.PERMISSION) and "no-such-if0" in str(info.value)
    # And it quotes dumpcap's error, not its "Capturing on ..." progress line
    if info.value.kind is ErrorKind.BAD_INPUT:
        assert "Capturing on" not in str(info.value) and "No such device" in str(info.value)


def test_capture_without_traffic_on_the_port() -> None:
    # Given a real capture whose traffic is on another port
    fixture = ROOT / "tests" / "fixtures" / "capture" / "alert48.pcap"
    # When inspected for port 5999
    result = _rmxdiag(str(fixture), "--port", "5999")
    # Then nothing to judge is not OK: exit 3 (no hint), and the verdict says where the TLS was
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("UNKNOWN: ") and "nothing to judge" in result.stdout.splitlines()[0]
    assert "no connection on port 5999" in result.stdout and "TLS seen on port " in result.stdout
    assert "0 connection(s) on port 5999" in result.stdout


def test_scheduler_entry_point_never_raises(tmp_path: Path) -> None:
    # Given targets with a capture fixture, no capture source, and an empty file
    from datetime import UTC, datetime

    from probes.model import ProbeStatus
    from probes.target import CaptureSources, ProbeContext, Settings, Target

    fixture = ROOT / "tests" / "fixtures" / "capture" / "alert48.pcap"
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    port = 39875

    def ctx() -> ProbeContext:
        return ProbeContext(now=datetime.now(UTC), deadline=time.monotonic() + 60)

    # When the scheduler runs the probe
    good = run_probe("capture", Target("t", capture=CaptureSources(files=(fixture,), port=port)), Settings(), ctx())
    none = run_probe("capture", Target("t"), Settings(), ctx())
    bad = run_probe("capture", Target("t", capture=CaptureSources(files=(empty,))), Settings(), ctx())
    # Then findings, a skip, and a failed envelope naming the file: never an exception
    assert good.status is ProbeStatus.OK and "CAPTURE_TLS_ALERT" in {f.code for f in good.findings}
    assert none.status is ProbeStatus.SKIPPED
    assert bad.status is ProbeStatus.FAILED and bad.error is not None
    assert bad.error.kind is ErrorKind.BAD_INPUT and str(empty) in bad.error.detail
