"""The daemon's HTTP endpoint against the real aiohttp server: metrics, /probe, reports, limits."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from daemon.config.model import BasicAuth, Config, ServerConfig, WebhookConfig
from probes.model import ProbeOutcome, ProbeStatus
from probes.target import ProbeContext, Registrar, SecretFile, Settings, Target
from tests.conftest import LabPKI
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually, need

STOP = threading.Event()


def _config(tmp_path: Path, **kw: object) -> Config:
    targets = (Target("rmx-ok", registrars=(Registrar("fe"),), deadline=1.0, interval=60),
               Target("rmx-bad", registrars=(Registrar("fe"),), deadline=1.0, interval=60))
    return Config(tmp_path / "rmxdiag.yaml", Settings(state_dir=tmp_path / "state", concurrency=4),
                  targets, **kw)  # type: ignore[arg-type]


def _healthy(url: str) -> bool:
    """True when /-/healthy answers 200 (a connection closed by the cap counts as not yet)."""
    try:
        return requests.get(url + "/-/healthy", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def _metrics(url: str) -> str:
    return requests.get(url + "/metrics", timeout=5).text


def test_metrics_follow_the_contract_and_pass_promtool(tmp_path: Path) -> None:
    # Given a daemon with a healthy and a faulty target (injected mtls probe)
    config = _config(tmp_path)
    with running(config, runner=engine_runner({"mtls": mtls_probe(faulty=["rmx-bad"])})) as d:
        eventually("both targets' first run", lambda: all(
            f'rmxdiag_last_run_timestamp_seconds{{target="{n}"}}' in _metrics(d.url) for n in ("rmx-ok", "rmx-bad")))
        text = _metrics(d.url)
    # Then every contract family is there with config/enum labels only
    assert 'rmxdiag_probe_success{probe="mtls",target="rmx-ok"} 1.0' in text
    assert 'rmxdiag_probe_success{probe="mtls",target="rmx-bad"} 0.0' in text
    assert 'rmxdiag_probe_failure_info{probe="mtls",reason="status_403",stage="sip",target="rmx-bad"} 1.0' in text
    assert 'rmxdiag_hint_active{code="SIP_NOT_TRUSTED",severity="critical",target="rmx-bad"} 1.0' in text
    assert 'rmxdiag_mtls_phase_duration_seconds{phase="tls",target="rmx-ok"} 0.01' in text
    assert 'rmxdiag_tls_version_info{target="rmx-ok",version="TLSv1.2"} 1.0' in text
    assert 'rmxdiag_sip_response_status{target="rmx-bad"} 403.0' in text
    assert 'rmxdiag_cert_not_after_timestamp_seconds{position="1",role="client",target="rmx-ok"}' in text
    assert 'rmxdiag_cert_not_after_timestamp_seconds{position="0",role="server",target="rmx-ok"} 1.893456e+09' in text
    assert "rmxdiag_config_last_reload_successful 1.0" in text
    assert 'rmxdiag_build_info{version="' in text
    # And promtool finds nothing to complain about
    promtool = need("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check


def test_probe_endpoint_runs_one_target_within_the_scrape_timeout(tmp_path: Path) -> None:
    # Given a target whose probe hangs
    def hangs(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        STOP.wait(min(ctx.remaining() + 5, 30))
        return ProbeOutcome("mtls", ProbeStatus.OK, 0.0)

    config = _config(tmp_path)
    runner = engine_runner({"mtls": mtls_probe()})

    def per_target(target: Target, settings: Settings, cache: dict[object, object]):  # type: ignore[no-untyped-def]
        if target.name == "rmx-bad":
            return engine_runner({"mtls": hangs})(target, settings, cache)  # type: ignore[arg-type]
        return runner(target, settings, cache)  # type: ignore[arg-type]

    try:
        with running(config, runner=per_target) as d:
            # When Prometheus asks for rmx-ok only
            ok = requests.get(d.url + "/probe", params={"target": "rmx-ok"}, timeout=5)
            # Then only its metrics come back, without the daemon-wide ones
            assert ok.status_code == 200
            assert 'target="rmx-ok"' in ok.text and 'target="rmx-bad"' not in ok.text
            assert "rmxdiag_config_last_reload_successful" not in ok.text
            # When the hanging target is probed with a 2 s scrape timeout
            start = time.monotonic()
            slow = requests.get(d.url + "/probe", params={"target": "rmx-bad"}, timeout=10,
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"})
            elapsed = time.monotonic() - start
            # Then it answers before the timeout with a deadline failure
            assert slow.status_code == 200 and elapsed < 2.0, elapsed
            failure = 'rmxdiag_probe_failure_info{probe="mtls",reason="deadline",stage="probe",target="rmx-bad"}'
            assert failure in slow.text
            # And an unconfigured target is refused
            assert requests.get(d.url + "/probe", params={"target": "evil.example"}, timeout=5).status_code == 404
    finally:
        STOP.set()


def test_report_health_and_ready(tmp_path: Path) -> None:
    # Given a running daemon with results
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe(faulty=["rmx-bad"])})) as d:
        eventually("rmx-bad's report", lambda: requests.get(d.url + "/api/v1/report", params={"target": "rmx-bad"},
                                                             timeout=5).status_code == 200)
        # When the report of one target is asked
        doc = requests.get(d.url + "/api/v1/report", params={"target": "rmx-bad"}, timeout=5).json()
        # Then it is the report document for that target only
        assert doc["schema"] == 1 and [t["name"] for t in doc["targets"]] == ["rmx-bad"]
        assert doc["targets"][0]["hints"][0]["code"] == "SIP_NOT_TRUSTED"
        assert requests.get(d.url + "/api/v1/report", params={"target": "nope"}, timeout=5).status_code == 404
        assert requests.get(d.url + "/-/healthy", timeout=5).status_code == 200
        assert requests.get(d.url + "/-/ready", timeout=5).status_code == 200


def test_basic_auth_is_enforced_with_the_configured_user(tmp_path: Path) -> None:
    # Given basic auth for one user
    secret = tmp_path / "web.pass"
    secret.write_text("s3cret-canary\n")
    secret.chmod(0o600)
    config = _config(tmp_path, server=ServerConfig(basic_auth=(BasicAuth("prom", SecretFile(secret)),)))
    with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
        good = "Basic " + base64.b64encode(b"prom:s3cret-canary").decode()
        bad = "Basic " + base64.b64encode(b"prom:wrong").decode()
        # Then no or wrong credentials get 401 and the right ones 200
        assert requests.get(d.url + "/metrics", timeout=5).status_code == 401
        assert requests.get(d.url + "/metrics", headers={"Authorization": bad}, timeout=5).status_code == 401
        assert requests.get(d.url + "/metrics", headers={"Authorization": good}, timeout=5).status_code == 200


def _raw(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    return s


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_slowloris_body_deadline_and_size_cap(tmp_path: Path) -> None:
    # Given a daemon with a 1 s header deadline and a 1 s body deadline and a webhook token
    token = tmp_path / "token"
    token.write_text("tok-canary\n")
    token.chmod(0o600)
    from daemon.config.model import WebhookConfig
    config = _config(tmp_path, server=ServerConfig(header_timeout=1.0, body_timeout=1.0, max_connections=400),
                     webhook=WebhookConfig(token=SecretFile(token)))
    with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
        # When 300 clients open a request and never finish the headers
        slow = [_raw(d.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(300)]
        try:
            # Then a legitimate scrape still answers in under a second
            start = time.monotonic()
            assert requests.get(d.url + "/metrics", timeout=5).status_code == 200
            assert time.monotonic() - start < 1.0
            # And the slow connections are closed by the header deadline
            closed = sum(_closed_within(s, 3.0)[0] for s in slow[:20])
            assert closed == 20
        finally:
            for s in slow:
                s.close()
        # When a body is announced but never sent
        auth = b"Authorization: Bearer tok-canary\r\n"
        start = time.monotonic()
        stalled = _raw(d.port, b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                       + b"Content-Length: 100\r\n\r\n{")
        with stalled:
            closed, answer = _closed_within(stalled, 5.0)
        # Then the connection ends at the body deadline
        assert closed and b" 408 " in answer.split(b"\r\n")[0] and time.monotonic() - start < 3.0
        # When a 1 MiB + 1 body is announced
        big = _raw(d.port, b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                   + f"Content-Length: {1024 * 1024 + 1}\r\n\r\n".encode())
        with big:
            closed, answer = _closed_within(big, 3.0)
        # Then it is refused with 413 before the body is read at all
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def test_https_is_not_stalled_by_a_silent_client(tmp_path: Path, lab_pki: LabPKI) -> None:
    # Given HTTPS with the lab's server certificate
    files = lab_pki.fe.write(tmp_path / "web", "web")
    full = tmp_path / "web" / "full.pem"
    full.write_bytes(lab_pki.fe.cert_pem + lab_pki.fe.chain_pem)
    ca = lab_pki.ca_bundle(tmp_path)
    config = _config(tmp_path, server=ServerConfig(tls_cert=full, tls_key=files["key"], header_timeout=2.0))
    with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
        # When one client connects and never starts its handshake
        with socket.create_connection(("127.0.0.1", d.port)) as silent:
            # Then another HTTPS scrape (verified against the lab CA) answers at once
            start = time.monotonic()
            answer = requests.get(f"https://127.0.0.1:{d.port}/-/healthy", verify=str(ca), timeout=5)
            assert answer.status_code == 200 and time.monotonic() - start < 1.0
            # And the silent client is dropped at the handshake deadline (header_timeout)
            closed, _ = _closed_within(silent, 4.0)
            assert closed


def test_connections_beyond_the_cap_are_closed_at_once_when_every_one_is_serving(tmp_path: Path) -> None:
    """Given a cap of 5 connections, 4 serving a /probe of a target whose probe hangs (the most
    /probe may hold) and one an alert whose body never arrives,
    When a sixth connects, Then it is closed without being served;
    And when the 5 connections are idle instead, a sixth replaces the oldest and is served."""
    release = threading.Event()

    def hangs(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        release.wait(min(ctx.remaining() + 1, 10))
        return ProbeOutcome("mtls", ProbeStatus.OK, 0.0)

    token = tmp_path / "token"
    token.write_text("tok-canary\n")
    token.chmod(0o600)
    config = _config(tmp_path, server=ServerConfig(max_connections=5, header_timeout=5.0, body_timeout=10.0),
                     webhook=WebhookConfig(token=SecretFile(token)))
    probe_request = (b"GET /probe?target=rmx-bad HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"X-Prometheus-Scrape-Timeout-Seconds: 6\r\n\r\n")
    alert_request = (b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-canary\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    try:
        with running(config, runner=engine_runner({"mtls": hangs})) as d:
            listener = d.daemon.http.listener
            busy = [_raw(d.port, probe_request) for _ in range(4)] + [_raw(d.port, alert_request)]
            try:
                eventually("five requests in progress", lambda: d.call(listener.busy_count) == 5)
                # When a sixth connects
                with socket.create_connection(("127.0.0.1", d.port)) as extra:
                    closed, _ = _closed_within(extra, 2.0)
                # Then it is closed without being served
                assert closed and d.call(lambda: listener.refused) == 1
            finally:
                for s in busy:
                    s.close()
            eventually("the probes' connections gone", lambda: d.call(listener.busy_count) == 0, timeout=15)
            # When five connections are open but idle
            idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(5)]
            try:
                eventually("the five idle connections counted", lambda: d.call(listener.open_count) == 5)
                # Then a sixth is served, and the oldest idle one was closed to make room
                assert requests.get(d.url + "/-/healthy", timeout=5).status_code == 200
                closed, _ = _closed_within(idle[0], 2.0)
                assert closed
            finally:
                for s in idle:
                    s.close()
    finally:
        release.set()
