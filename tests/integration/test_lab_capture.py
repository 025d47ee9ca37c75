"""The lab capture: a replayed transcript that real tshark dissects like a live capture."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from daemon.lab.capture import record_registration
from daemon.lab.run import frontend, run_scenario
from daemon.lab.scenarios import SCENARIOS, write_material
from tests.support.lab import open_fds
from tests.support.peers import need


def _tshark(pcap: Path, port: int, *args: str) -> list[list[str]]:
    tshark = need("tshark")
    out = subprocess.run([tshark, "-r", str(pcap), "-d", f"tcp.port=={port},tls", *args], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _record(name: str, tmp_path: Path) -> tuple[Path, Path | None, int]:
    scenario = SCENARIOS[name]
    material = write_material(scenario, tmp_path)
    with frontend(scenario, material) as fe:
        assert fe is not None
        pcap, keylog = record_registration(fe, material, scenario, tmp_path)
    assert pcap is not None
    return pcap, keylog, 5061  # the replay shows the Front End on its field port


def test_healthy_capture_decodes_to_mtls_and_sip_200(tmp_path: Path) -> None:
    # Given the capture of the simulated RMX registering with a healthy Front End
    pcap, keylog, port = _record("healthy", tmp_path)
    # Then tshark sees a full MTLS handshake: CertificateRequest from the FE, a non-empty client Certificate
    rows = _tshark(pcap, port, "-T", "fields", "-e", "tcp.srcport", "-e", "tls.handshake.type",
                   "-e", "tls.handshake.certificates_length", "-e", "tcp.flags.reset")
    from_fe = [r for r in rows if r[0] == str(port)]
    from_rmx = [r for r in rows if r[0] != str(port)]
    assert any("13" in r[1].split(",") for r in from_fe)
    assert any("11" in r[1].split(",") and r[2] not in ("", "0") for r in from_rmx)
    assert all(r[3] in ("", "0", "False") for r in rows)
    # And with the key log the SIP inside decodes to the 200 answer
    assert keylog is not None
    assert keylog.stat().st_mode & 0o777 == 0o600, "the key log decrypts the lab SIP: owner-only"
    sip = _tshark(pcap, port, "-d", f"tls.port=={port},sip", "-o", f"tls.keylog_file:{keylog}", "-Y", "sip.Status-Code",
                  "-T", "fields",
                  "-e", "sip.Status-Code")
    assert sip == [["200"]]


def test_untrusted_ca_capture_ends_in_a_reset_from_the_front_end(tmp_path: Path) -> None:
    # Given the capture of the simulated RMX with a foreign-CA certificate
    pcap, _, port = _record("untrusted-ca", tmp_path)
    rows = _tshark(pcap, port, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags.reset", "-e", "tls.alert_message")
    # Then the last segment is a reset sent by the Front End, and no TLS alert was sent at all
    assert rows[-1][0] == str(port) and rows[-1][1] in ("1", "True")
    assert all(r[2] == "" for r in rows)


def test_a_lab_run_leaves_no_thread_and_no_descriptor(tmp_path: Path) -> None:
    # Given the descriptors and threads before a whole in-process lab run
    fds, threads = open_fds(), set(threading.enumerate())
    # When a scenario runs end to end
    run = run_scenario("not-trusted-app", tmp_path)
    # Then it found its root cause and left nothing running or open (probe threads end at their
    # deadline; the engine's pool keeps its idle threads for the next run, holding nothing)
    assert "SIP_NOT_TRUSTED" in [h.code for h in run.report.hints]
    leftover = [t for t in threading.enumerate() if t not in threads and t.is_alive() and not _pooled(t)]
    for thread in leftover:
        thread.join(10)
    assert [t.name for t in leftover if t.is_alive()] == []
    assert open_fds() == fds
    # And later runs reuse the pool's threads instead of adding their own: however the probes of
    # each run happen to overlap in time, the pool never holds more threads than a run has probes
    again = [run_scenario("not-trusted-app", tmp_path / f"again{i}") for i in range(3)]
    pooled = [t.name for t in threading.enumerate() if _pooled(t)]
    assert 0 < len(pooled) <= max(len(r.report.probes) for r in again), pooled


def _pooled(thread: threading.Thread) -> bool:
    """A worker of the engine's process-wide probe pool (daemon.engine.probe_pool)."""
    return thread.name.startswith("engine-probe_")


def test_registrar_down_capture_is_a_syn_answered_by_a_reset(tmp_path: Path) -> None:
    # Given the Front End is down, the simulated RMX's attempt is refused by the kernel
    need("tshark")  # the lab records its capture only where tshark can read it back
    run = run_scenario("registrar-down", tmp_path)
    assert run.capture is not None
    rows = _tshark(run.capture, 5061, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags.syn",
                   "-e", "tcp.flags.reset")
    # Then the capture holds exactly that: our SYN, then a reset from the Front End's port
    assert [r[0] == "5061" for r in rows] == [False, True]
    assert rows[0][1] in ("1", "True") and rows[1][2] in ("1", "True")
