"""Small daemon parts: report store, exporter samples, sd_notify, alert parsing, actions."""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from daemon.config.model import ActionConfig
from daemon.report import Hint, TargetReport
from daemon.serve import actions, exporter, sdnotify
from daemon.serve.snapshot import Snapshot, TargetState
from daemon.serve.state import DaemonState
from daemon.serve.store import ReportStore
from daemon.serve.webhook import firing_targets
from probes.certificate.probe import CertificateResult
from probes.model import Metric, ProbeOutcome, ProbeStatus, Severity
from probes.mtls.result import MtlsResult
from tests.support.daemon import mtls_result

HINT = Hint("SIP_NOT_TRUSTED", Severity.CRITICAL, "title", ("e",), ("fix",))


def test_store_is_bounded_private_and_atomic(tmp_path: Path) -> None:
    # Given a store keeping 3 reports
    store = ReportStore(tmp_path, keep=3, state=DaemonState(tmp_path))
    # When 5 are saved
    ids = [store.save("20261126T000000Z", "rmx", {"n": i}) for i in range(5)]
    # Then the newest 3 remain, each 0600, no temporary files, and names cannot escape the directory
    assert store.ids() == ids[2:]
    assert all(stat.S_IMODE((tmp_path / "reports" / f"{i}.json").stat().st_mode) == 0o600 for i in ids[2:])
    assert not list((tmp_path / "reports").glob(".*"))
    assert store.load(ids[-1]) == {"n": 4} and store.load("../../etc/passwd") is None


def test_store_write_failure_is_counted_and_leaves_old_reports(tmp_path: Path) -> None:
    # Given a stored report and a file size limit too small for the next one
    store = ReportStore(tmp_path, keep=5, state=DaemonState(tmp_path))
    first = store.save("20261126T000000Z", "rmx", {"n": 0})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    pid = os.fork()
    if pid == 0:  # the child hits the limit (SIGXFSZ ignored so write() fails with EFBIG)
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10, hard))
        ok = store.save("20261126T000001Z", "rmx", {"big": "x" * 1000}) is None and store.write_errors == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    # Then the save failed cleanly: counted, the old report intact, no temporary file left
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.ids() == [first] and not list((tmp_path / "reports").glob(".*"))
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_FSIZE)


def _metric_lines(*outcomes: ProbeOutcome) -> list[str]:
    report = TargetReport("rmx", outcomes)
    snap = Snapshot(targets=MappingProxyType({"rmx": TargetState(report, 1.0)}), order=("rmx",))
    text = exporter.render(lambda: snap, global_metrics=False).decode()
    return [line for line in text.splitlines() if line.startswith(("rmxdiag_cert_not_after", "rmxdiag_tls_version",
                                                                   "rmxdiag_mtls_phase", "rmxdiag_sip"))]


def test_exporter_renders_each_probe_result_samples_once_per_series() -> None:
    # Given a certificate result (leaf + one CA) and an mtls result that also describes our chain
    cert = CertificateResult("rmx.pem", "pem", None, not_after=(1.9e9, 2.0e9))
    mtls = mtls_result(client_chain=(datetime.fromtimestamp(1.5e9, UTC),))
    outcomes = (ProbeOutcome("certificate", ProbeStatus.OK, 0.1, result=cert),
                ProbeOutcome("mtls", ProbeStatus.OK, 0.1, result=mtls))
    # When rendered
    lines = _metric_lines(*outcomes)
    # Then the certificate probe's view of the client chain wins, the FE chain comes from mtls
    assert 'rmxdiag_cert_not_after_timestamp_seconds{position="0",role="client",target="rmx"} 1.9e+09' in lines
    assert 'rmxdiag_cert_not_after_timestamp_seconds{position="1",role="client",target="rmx"} 2e+09' in lines
    assert 'rmxdiag_cert_not_after_timestamp_seconds{position="0",role="server",target="rmx"} 1.893456e+09' in lines
    assert sum("role=\"client\"" in line for line in lines) == 2
    assert 'rmxdiag_tls_version_info{target="rmx",version="TLSv1.2"} 1.0' in lines
    assert 'rmxdiag_sip_response_status{target="rmx"} 200.0' in lines
    assert len([line for line in lines if line.startswith("rmxdiag_mtls_phase")]) == 4


def test_result_samples_keep_labels_bounded() -> None:
    # Given an mtls result with an unknown TLS version, a negative phase, an unparsable FE certificate
    # (notAfter 0) and a chain longer than the position bound
    base = mtls_result(client_chain=tuple(datetime.fromtimestamp(1.5e9 + i, UTC) for i in range(20)))
    registrar = replace(base.registrars[0], tls_version="TLSv9 \"x\"", phases=(("resolve", -1.0), ("tls", 0.5)),
                        server_chain=(replace(base.registrars[0].server_chain[0], not_after_ts=0.0),))
    samples = list(MtlsResult((registrar,), base.client_chain).samples())
    # Then only well-formed, bounded values become samples
    assert [s.labels for s in samples if s.metric is Metric.MTLS_PHASE_SECONDS] == [("tls",)]
    assert not [s for s in samples if s.metric is Metric.TLS_VERSION]
    chain = [s.labels for s in samples if s.metric is Metric.CERT_NOT_AFTER]
    assert chain == [("client", str(i)) for i in range(16)]
    # And a failed outcome without a result still has its envelope metrics only
    assert _metric_lines(ProbeOutcome("mtls", ProbeStatus.FAILED, 0.1)) == []


def test_sd_notify_reaches_an_abstract_socket_and_reads_the_watchdog() -> None:
    # Given a datagram socket in the abstract namespace
    name = f"rmxdiag-unit-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        # When READY and STATUS are sent
        assert sdnotify.notify("READY=1", "STATUS=ok", environ={"NOTIFY_SOCKET": "@" + name})
        # Then one datagram carries both lines
        assert sock.recv(1024) == b"READY=1\nSTATUS=ok"
    assert not sdnotify.notify("READY=1", environ={})
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None


def test_firing_targets_reads_only_firing_alerts() -> None:
    payload = {"alerts": [{"status": "firing", "labels": {"target": "a"}},
                          {"status": "resolved", "labels": {"target": "b"}},
                          {"status": "firing", "labels": {"target": "a"}},
                          {"status": "firing", "labels": {"instance": "c"}}, "junk"]}
    assert firing_targets(payload, "target") == ["a"]
    with pytest.raises(ValueError):
        firing_targets({"no": "alerts"}, "target")


def test_action_timeout_kills_the_process_group_and_env_is_minimal(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a command that prints its environment then sleeps past the timeout
    script = tmp_path / "slow.py"
    script.write_text("import os, sys, time\nprint(sorted(os.environ), flush=True)\ntime.sleep(30)\n")
    action = ActionConfig("SIP_NOT_TRUSTED", command=(sys.executable, str(script)), timeout=0.5, dry_run=False)
    monkeypatch.setenv("RMXDIAG_TEST_CANARY", "leak")
    start = time.monotonic()
    result = actions.execute(action, "rmx", HINT)
    # Then it is stopped at the timeout and the daemon's environment did not reach it
    assert result.outcome is actions.Outcome.TIMEOUT and time.monotonic() - start < 5
    dry = actions.execute(ActionConfig("SIP_NOT_TRUSTED", command=("/bin/false",)), "rmx", HINT)
    assert dry.outcome is actions.Outcome.DRY_RUN
    env_script = tmp_path / "env.py"
    env_script.write_text("import os\nprint(' '.join(sorted(os.environ)))\n")
    shown = actions.execute(ActionConfig("SIP_NOT_TRUSTED", command=(sys.executable, str(env_script)),
                                         dry_run=False), "rmx", HINT)
    assert shown.outcome is actions.Outcome.OK and "RMXDIAG_HINT_CODE" in shown.detail
    assert "RMXDIAG_TEST_CANARY" not in shown.detail


class _Clocks:
    """Injectable clocks: a monotonic one and a wall clock that can be stepped (like NTP or an operator)."""

    def __init__(self, wall: float) -> None:
        self.mono = 100.0
        self.wall = wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def test_daemon_state_keeps_sequence_and_cooldowns_across_instances(tmp_path: Path) -> None:
    """Given a state with two sequence numbers handed out and a cooldown started at wall time 1000,
    When the daemon restarts 10 s later, Then the sequence continues and the cooldown holds until
    its 300 s have passed, file mode 0600."""
    clocks = _Clocks(1000.0)
    state = DaemonState(tmp_path, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall)
    assert [state.next_sequence(), state.next_sequence()] == [1, 2]
    state.start_cooldown(["rmx"])
    clocks.advance(10)
    clocks.mono = 5.0  # a new process: its monotonic clock has another origin
    again = DaemonState(tmp_path, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall)
    assert again.next_sequence() == 3
    clocks.advance(289)
    assert again.cooling("rmx", 300)
    clocks.advance(1)
    assert not again.cooling("rmx", 300)
    assert stat.S_IMODE((tmp_path / "daemon.json").stat().st_mode) == 0o600


def test_a_wall_clock_step_neither_freezes_nor_ends_a_cooldown(tmp_path: Path) -> None:
    """Given a cooldown of 300 s started in this process,
    When the wall clock is stepped back a year (or forward a year),
    Then the cooldown still ends exactly 300 s (monotonic) after it started."""
    for step in (-365 * 86400.0, 365 * 86400.0):
        clocks = _Clocks(2_000_000_000.0)
        state = DaemonState(tmp_path / str(step), monotonic=lambda c=clocks: c.mono,  # type: ignore[misc]
                            wall=lambda c=clocks: c.wall)  # type: ignore[misc]
        state.start_cooldown(["rmx"])
        clocks.wall += step
        clocks.advance(299)
        assert state.cooling("rmx", 300), step
        clocks.advance(1)
        assert not state.cooling("rmx", 300), step


def test_a_cooldown_saved_in_the_future_lasts_one_cooldown_after_a_restart(tmp_path: Path) -> None:
    """Given daemon.json holding a cooldown started a year ahead (the clock went back while stopped),
    When the daemon starts, Then the cooldown holds for its length from the start, then ends."""
    clocks = _Clocks(2_000_000_000.0)
    (tmp_path / "daemon.json").write_text(json.dumps({"sequence": 10, "cooldowns": {"rmx": clocks.wall + 365 * 86400}}))
    state = DaemonState(tmp_path, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall)
    assert state.cooling("rmx", 5)
    clocks.advance(5)
    assert not state.cooling("rmx", 5)


def test_runs_are_kept_and_ordered_by_sequence_not_by_wall_clock_stamp(tmp_path: Path) -> None:
    """Given 3 stored runs stamped a year ahead (sequence 1-3) and keep 3,
    When a run is stored with today's (earlier) stamp,
    Then the oldest by sequence is pruned, the new run is kept and listed last."""
    store = ReportStore(tmp_path, keep=3, state=DaemonState(tmp_path))
    future = [store.save("20271202T080000Z", "rmx", {"n": i}) for i in range(3)]
    new = store.save("20261202T080000Z", "rmx", {"n": 3})
    assert new is not None and store.ids() == [*future[1:], new]
    assert store.load(new) == {"n": 3}


def test_a_lost_state_file_does_not_restart_the_sequence_below_the_stored_runs(tmp_path: Path) -> None:
    """Given stored runs up to sequence 3 and daemon.json deleted, When the store opens again and saves,
    Then the new run takes sequence 4 (it is the newest, not pruned as the oldest)."""
    store = ReportStore(tmp_path, keep=3, state=DaemonState(tmp_path))
    for i in range(3):
        store.save("20261202T080000Z", "rmx", {"n": i})
    (tmp_path / "daemon.json").unlink()
    again = ReportStore(tmp_path, keep=3, state=DaemonState(tmp_path))
    new = again.save("20261202T080001Z", "rmx", {"n": 3})
    assert new == "20261202T080001Z-0004-rmx" and again.ids()[-1] == new


def test_run_ids_past_9999_keep_their_order(tmp_path: Path) -> None:
    """Given a sequence at 9998, When 3 runs are stored, Then their ids grow to 5 digits and stay in order."""
    state = DaemonState(tmp_path)
    state.at_least(9998)
    store = ReportStore(tmp_path, keep=5, state=state)
    ids = [store.save("20261202T080000Z", "rmx", {"n": i}) for i in range(3)]
    assert ids == ["20261202T080000Z-9999-rmx", "20261202T080000Z-10000-rmx", "20261202T080000Z-10001-rmx"]
    assert store.ids() == ids


def test_daemon_serve_modules_import_no_circle() -> None:
    # Given every import statement of daemon/serve (TYPE_CHECKING blocks included)
    import ast

    serve = Path(__file__).resolve().parents[2] / "daemon" / "serve"
    graph: dict[str, set[str]] = {}
    for path in serve.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[f"daemon.serve.{path.stem}"] = {d for d in deps if d.startswith("daemon.serve.")}

    # Then no module reaches itself through the others (the http <-> service circle stays open)
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d in graph and d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, set()))

    assert [m for m in graph if reaches(m, m, set())] == []


def test_a_dry_run_http_action_records_its_url_without_inline_credentials() -> None:
    """Given an HTTP action whose URL carries user:password@ and an ?apikey= value,
    When it runs dry (its result is stored in the run and shown on the run's page),
    Then the recorded detail names method, host and path, and no credential."""
    action = ActionConfig("SIP_NOT_TRUSTED",
                          http_url="https://svc-user:CANARYinlinepw@tickets.example:8443/api?apikey=CANARYkey")
    result = actions.execute(action, "rmx", HINT)
    assert result.outcome is actions.Outcome.DRY_RUN
    assert "tickets.example:8443/api" in result.detail
    assert "CANARY" not in json.dumps(result.to_json()) and "svc-user" not in result.detail


def test_a_dropped_target_keeps_its_cooldown_until_it_has_passed(tmp_path: Path) -> None:
    """Given a 300 s cooldown started for rmx-a and rmx-b,
    When a reload keeps only rmx-b (at once, then again after 300 s),
    Then rmx-a's cooldown is kept while it runs (also in the saved file) and forgotten once it has passed."""
    clocks = _Clocks(1000.0)
    state = DaemonState(tmp_path, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall)
    state.start_cooldown(["rmx-a", "rmx-b"])
    clocks.advance(10)
    state.forget({"rmx-b"}, 300)
    assert state.cooling("rmx-a", 300)
    assert "rmx-a" in json.loads((tmp_path / "daemon.json").read_text())["cooldowns"]
    clocks.advance(300)
    state.forget({"rmx-b"}, 300)
    assert set(state.cooldowns) == {"rmx-b"}
    assert set(json.loads((tmp_path / "daemon.json").read_text())["cooldowns"]) == {"rmx-b"}
