"""What the endpoint answers to odd requests, and what it logs about them (real aiohttp server, raw sockets)."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import socket
import time
from pathlib import Path

import pytest
import requests

from daemon.config.model import Config, ServerConfig, WebhookConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running

TOKEN = "answers-test-token"  # noqa: S105 (a test token)


def _config(tmp_path: Path, **kw: object) -> Config:
    token = tmp_path / "webhook.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    targets = (Target("rmx-ok", registrars=(Registrar("fe"),), deadline=1.0, interval=60),)
    return Config(tmp_path / "rmxdiag.yaml", Settings(state_dir=tmp_path / "state"), targets,
                  webhook=WebhookConfig(token=SecretFile(token)), **kw)  # type: ignore[arg-type]


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection and read until the daemon closes it (or 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def _head(answer: bytes) -> tuple[bytes, dict[str, str]]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return head[0].encode(), {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}


def _errors(caplog: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and r.name.startswith("rmxdiag")]


def test_a_bearer_token_that_is_not_utf8_is_a_401_not_a_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Given the alert webhook with a token,
    When 50 unauthenticated POSTs carry `Authorization: Bearer \\xff` (not UTF-8),
    Then each is answered 401 and nothing is logged at ERROR level."""
    request = (b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\r\n"
               b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d, \
            caplog.at_level(logging.DEBUG, logger="rmxdiag"):
        statuses = {_head(_exchange(d.port, request))[0] for _ in range(50)}
    assert statuses == {b"HTTP/1.1 401 Unauthorized"}
    assert _errors(caplog) == []


def test_every_answer_has_nosniff_and_json_is_never_cached(tmp_path: Path) -> None:
    """Given a running daemon,
    When a request is malformed (the parser's 400), a handler fails (a 500), or a JSON report is asked,
    Then each answer carries X-Content-Type-Options: nosniff, and the JSON one Cache-Control: no-store."""
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d:
        bad = _exchange(d.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad\x01Header: y\r\n\r\n")
        status, headers = _head(bad)
        assert b" 400 " in status and headers.get("x-content-type-options") == "nosniff", bad[:300]

        def bug(_payload: object) -> list[str]:
            raise RuntimeError("injected bug")

        d.daemon.troubleshooter_names = bug  # type: ignore[method-assign]
        failed = requests.post(d.url + "/api/v1/alerts", json={"alerts": []},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert failed.status_code == 500 and failed.headers.get("X-Content-Type-Options") == "nosniff"
        for path in ("/api/v1/report", "/api/v1/report/runs", "/api/v1/report/runs/20260101T000000Z-0001-x"):
            answer = requests.get(d.url + path, timeout=5)
            assert answer.headers.get("Cache-Control") == "no-store", path
            assert answer.headers.get("X-Content-Type-Options") == "nosniff", path


def test_an_unreadable_token_file_and_unknown_targets_log_one_line_not_one_per_request(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Given the webhook token file turned group/world-readable (refused by the secret rules),
    When 200 unauthenticated POSTs arrive, Then all get 401 and one ERROR line says so (not 200);
    And when the token is fixed and one alert names 1,000 unconfigured targets, one WARNING line is logged."""
    config = _config(tmp_path)
    token = tmp_path / "webhook.token"
    with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d, \
            caplog.at_level(logging.DEBUG, logger="rmxdiag"):
        token.chmod(0o644)
        codes = {requests.post(d.url + "/api/v1/alerts", json={}, timeout=5).status_code for _ in range(200)}
        assert codes == {401}
        unreadable = [m for m in _errors(caplog) if "cannot be read" in m]
        assert len(unreadable) == 1, unreadable[:3]
        token.chmod(0o600)
        caplog.clear()
        alerts = [{"status": "firing", "labels": {"target": f"stranger-{i}"}} for i in range(1000)]
        answer = requests.post(d.url + "/api/v1/alerts", json={"alerts": alerts},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert answer.status_code == 202 and len(answer.json()["targets"]) == 1000
        warnings = _errors(caplog, logging.WARNING)
        assert len(warnings) == 1 and "1000 target(s)" in warnings[0], warnings[:3]


def test_a_host_the_daemon_does_not_know_is_refused_dns_rebinding(tmp_path: Path) -> None:
    """Given a loopback daemon without basic auth, with enable_lifecycle and allowed_hosts [rmxdiag.example],
    When requests name a foreign Host (a page whose name re-resolved to 127.0.0.1),
    Then reading and reloading are refused with 421, while loopback names, IP addresses, this
    machine's name and the allowed name are served; and an Origin whose scheme differs is cross-site."""
    server = ServerConfig(enable_lifecycle=True, allowed_hosts=("rmxdiag.example",))
    with running(_config(tmp_path, server=server), runner=engine_runner({"mtls": mtls_probe()})) as d:
        rebound = f"rebind.attacker.example:{d.port}"
        assert requests.get(d.url + "/api/v1/report", headers={"Host": rebound}, timeout=5).status_code == 421
        reload = requests.post(d.url + "/-/reload", timeout=5, headers={
            "Host": rebound, "Origin": f"http://{rebound}", "Sec-Fetch-Site": "same-origin"})
        assert reload.status_code == 421 and reload.headers.get("X-Content-Type-Options") == "nosniff"
        for host in (f"127.0.0.1:{d.port}", f"localhost:{d.port}", f"[::1]:{d.port}", "rmxdiag.example",
                     f"RMXDIAG.example.:{d.port}", f"{socket.gethostname()}:{d.port}"):
            assert requests.get(d.url + "/-/healthy", headers={"Host": host}, timeout=5).status_code == 200, host
        other_scheme = requests.post(d.url + "/-/reload", headers={"Origin": f"https://127.0.0.1:{d.port}"}, timeout=5)
        assert other_scheme.status_code == 403
        # (the in-process config has no file to re-read: passing the checks means a failed reload, 500)
        same = requests.post(d.url + "/-/reload", headers={"Origin": f"http://127.0.0.1:{d.port}"}, timeout=10)
        assert same.status_code == 500 and "reload failed" in same.text


def test_probe_is_throttled_per_target_and_refuses_cross_site_browsers(tmp_path: Path) -> None:
    """Given a daemon whose runs are counted,
    When 8 clients loop GET /probe?target=rmx-ok for 2 s,
    Then every answer is 200 with the target's metrics but at most 2 runs started (not hundreds);
    And a browser's cross-site request (<img src=...>: Sec-Fetch-Site cross-site, or a foreign Origin)
    is refused with 403 and starts nothing, while Prometheus' plain request is served."""
    runs: list[str] = []
    probe = mtls_probe()

    def counting(target: Target, settings: Settings, cache: dict[object, object]) -> object:
        runs.append(target.name)
        return engine_runner({"mtls": probe})(target, settings, cache)  # type: ignore[arg-type]

    config = _config(tmp_path)
    with running(config, runner=counting) as d:  # type: ignore[arg-type]
        d.call(lambda: d.daemon.scheduler.apply(config.targets, config.settings, schedule=False))
        runs.clear()
        stop = time.monotonic() + 2.0

        def loop() -> set[int]:
            seen = set()
            while time.monotonic() < stop:
                answer = requests.get(d.url + "/probe", params={"target": "rmx-ok"}, timeout=10)
                assert 'rmxdiag_probe_success{probe="mtls",target="rmx-ok"} 1.0' in answer.text
                seen.add(answer.status_code)
            return seen

        with cf.ThreadPoolExecutor(8) as pool:
            statuses = set().union(*pool.map(lambda _: loop(), range(8)))
        assert statuses == {200}
        assert 1 <= len(runs) <= 2, len(runs)
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
            refused = requests.get(d.url + "/probe", params={"target": "rmx-ok"}, headers=headers, timeout=5)
            assert refused.status_code == 403, headers
        assert len(runs) <= 2
