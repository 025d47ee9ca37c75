"""The endpoint of the real daemon (`rmxdiag serve`) under load and abuse: /probe budgets, parse errors,
malformed requests, the lifecycle endpoint, the listen backlog and auth schemes."""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests

from daemon.commands.serve import EXIT_GRACE
from daemon.config.model import BasicAuth, Config, ServerConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.support import mtls as peers
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually, need
from tests.support.served import TOKEN, daemon_dir, secret, serve

pytestmark = [pytest.mark.peer, pytest.mark.slow]
CLI = [sys.executable, "-m", "daemon.cli"]


async def _scrape(session: aiohttp.ClientSession, url: str, target: str, timeout: str) -> tuple[int, float, str]:
    start = time.monotonic()
    async with session.get(url + "/probe", params={"target": target},
                           headers={"X-Prometheus-Scrape-Timeout-Seconds": timeout}) as response:
        body = await response.text()
    return response.status, time.monotonic() - start, body


def test_probe_answers_within_the_scrape_timeout_under_200_concurrent_scrapes(tmp_path: Path) -> None:
    """Given a target whose registrar is a tarpit (deadline 10 s) and a fast target, When 200 scrapes of the
    tarpit target (X-Prometheus-Scrape-Timeout-Seconds: 2) run at once and the fast target is scraped
    meanwhile, Then every scrape answers 200 within 2.5 s with probe_success 0 for the tarpit, and the
    fast target's scrape is not delayed by them (under 1 s)."""
    with peers.tarpit() as tarpit:
        config, port = daemon_dir(tmp_path, {"rmx-slow": tarpit, "rmx-fast": 9}, deadline=10)
        with serve(config, port) as d:
            async def main() -> tuple[list[tuple[int, float, str]], tuple[int, float, str]]:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                 timeout=aiohttp.ClientTimeout(total=30)) as session:
                    slow = [asyncio.create_task(_scrape(session, d.url, "rmx-slow", "2")) for _ in range(200)]
                    await asyncio.sleep(0.5)  # the slow scrapes are in
                    fast = await _scrape(session, d.url, "rmx-fast", "2")
                    return list(await asyncio.gather(*slow)), fast

            slow, fast = asyncio.run(main())
    durations = sorted(s for _, s, _ in slow)
    late = sum(1 for s in durations if s > 2.5)
    print(f"200 concurrent tarpit scrapes (timeout 2 s): {late} over 2.5 s, median {durations[100]:.2f} s, max "
          f"{durations[-1]:.2f} s; fast target scraped meanwhile in {fast[1]:.2f} s")
    assert all(status == 200 for status, _, _ in slow) and fast[0] == 200
    assert late == 0
    assert all('rmxdiag_probe_success{probe="mtls",target="rmx-slow"} 0.0' in body
               or 'probe="engine"' in body for _, _, body in slow)
    assert fast[1] < 1.0 and 'target="rmx-fast"' in fast[2]


def test_a_scrape_that_gets_no_probe_slot_answers_at_its_budget(tmp_path: Path) -> None:
    """Given four tarpit targets holding all four probe slots (concurrency 1, scrape timeout 6 s), When a
    fast target is scraped with a 2 s timeout meanwhile, Then it answers 200 within 2 s with
    probe_success 0 and the reason, and the slow scrapes still answer within their own 6 s."""
    with peers.tarpit() as tarpit:
        slow_targets = {f"rmx-slow{i}": tarpit for i in range(4)}
        config, port = daemon_dir(tmp_path, {**slow_targets, "rmx-fast": 9}, deadline=10)
        config.write_text(config.read_text().replace("  deadline: 10\n", "  deadline: 10\n  concurrency: 1\n", 1))
        with serve(config, port) as d:
            async def main() -> tuple[list[tuple[int, float, str]], tuple[int, float, str]]:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                    slow = [asyncio.create_task(_scrape(session, d.url, name, "6")) for name in slow_targets]
                    await asyncio.sleep(0.5)
                    fast = await _scrape(session, d.url, "rmx-fast", "2")
                    return list(await asyncio.gather(*slow)), fast

            slow, fast = asyncio.run(main())
    print(f"no slot: fast target answered {fast[0]} in {fast[1]:.2f} s; slow ones in "
          f"{', '.join(f'{s:.2f}' for _, s, _ in slow)} s")
    assert fast[0] == 200 and fast[1] < 2.0
    assert 'rmxdiag_probe_success{probe="engine",target="rmx-fast"} 0.0' in fast[2]
    assert 'reason="overloaded"' in fast[2]  # the daemon's load, never the target's fault
    assert all(status == 200 and seconds < 6.0 for status, seconds, _ in slow)


def test_deeply_nested_json_on_the_webhook_is_a_400_without_traceback(tmp_path: Path) -> None:
    """Given an authenticated alert POST whose body is JSON nested 200,000 deep (400 KB, under the body cap),
    When the webhook parses it, Then it answers 400 (Alertmanager does not retry a 4xx) and logs no traceback."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    body = b"[" * 200_000 + b"]" * 200_000
    with serve(config, port) as d:
        answer = requests.post(d.url + "/api/v1/alerts", data=body, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        time.sleep(0.2)
        log = d.log()
    print(f"200,000-deep JSON: {answer.status_code} {answer.text.strip()!r}; tracebacks logged: "
          f"{log.count('Traceback')}")
    assert answer.status_code == 400
    assert "Traceback" not in log


def test_malformed_requests_are_logged_at_debug_level_and_rate_limited(tmp_path: Path) -> None:
    """Given a daemon at debug log level, When 50 unauthenticated clients each send a malformed request
    (bad request line, bad header, bad chunking, over-long line, bad URL), Then each gets a 400, and the log
    gains no ERROR line, no traceback, and at most 3 lines in all."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    bad = [b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
           b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"GET http://[ HTTP/1.1\r\n\r\n",
           b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    with serve(config, port) as d:
        before = len(d.log().splitlines())
        statuses = []
        for i in range(50):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(bad[i % len(bad)])
                statuses.append(conn.recv(64).split(b" ")[1])
        time.sleep(0.3)
        new = d.log().splitlines()[before:]
    print(f"50 malformed requests: statuses {sorted(set(statuses))}, {len(new)} log lines: {new[:3]}")
    assert set(statuses) == {b"400"}
    assert len(new) <= 3 and not any(" ERROR " in line or "Traceback" in line for line in new), new


def test_listen_backlog_is_the_one_configured(tmp_path: Path) -> None:
    """Given the daemon listening, When `ss` shows its listening socket, Then the backlog (Send-Q) is 512,
    not asyncio's default of 100."""
    ss = need("ss")
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    with serve(config, port):
        out = subprocess.run([ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10,
                             check=True).stdout.split()
    print(f"listen socket: {out}")
    assert out[0] == "LISTEN" and out[2] == "512"


def test_basic_and_bearer_schemes_are_case_insensitive(tmp_path: Path) -> None:
    """Given basic auth and a webhook token, When clients send the schemes in lower and upper case (RFC 7617,
    RFC 6750), Then both are accepted, and wrong credentials are still refused."""
    secret(tmp_path / "web.pass", b"web-pass-2\n")
    config, port = daemon_dir(tmp_path, {"rmx-a": 9},
                              "server:\n  basic_auth:\n    - username: prom\n      password_file: web.pass\n")
    creds = base64.b64encode(b"prom:web-pass-2").decode()
    alert = {"alerts": [{"status": "firing", "labels": {"target": "nowhere"}}]}
    with serve(config, port) as d:
        basic = {scheme: requests.get(d.url + "/metrics", headers={"Authorization": f"{scheme} {creds}"},
                                      timeout=10).status_code for scheme in ("Basic", "basic", "BASIC")}
        wrong = requests.get(d.url + "/metrics", headers={"Authorization": "basic " + base64.b64encode(
            b"prom:nope").decode()}, timeout=10).status_code
        bearer = {scheme: requests.post(d.url + "/api/v1/alerts", json=alert, timeout=10,
                                        headers={"Authorization": f"{scheme} {TOKEN}"}).status_code
                  for scheme in ("Bearer", "bearer", "BEARER")}
    print(f"auth schemes: basic {basic}, wrong password {wrong}, bearer {bearer}")
    assert set(basic.values()) == {200} and wrong == 401 and set(bearer.values()) == {202}


def test_the_lifecycle_endpoint_is_off_by_default_and_refuses_cross_site_requests(tmp_path: Path) -> None:
    """Given a daemon with the default config, When POST /-/reload arrives, Then it is refused (403) while
    SIGHUP still reloads; and given server.enable_lifecycle, Then a same-origin or non-browser POST reloads
    (200) and a cross-site one (foreign Origin, Sec-Fetch-Site: cross-site, Origin null) gets 403."""
    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    with serve(config, port) as d:
        default = requests.post(d.url + "/-/reload", timeout=10)
        d.proc.send_signal(signal.SIGHUP)
        sighup = eventually("the SIGHUP reload in the log", lambda: "configuration reloaded" in d.log(), 10)
    config.write_text(config.read_text() + "server:\n  enable_lifecycle: true\n")
    with serve(config, port) as d:
        def post(**headers: str) -> int:
            return requests.post(d.url + "/-/reload", headers=headers, timeout=10).status_code
        enabled = {"no origin": post(), "same origin": post(Origin=d.url),
                   "foreign origin": post(Origin="http://evil.example"), "origin null": post(Origin="null"),
                   "cross-site fetch": post(**{"Sec-Fetch-Site": "cross-site"}),
                   "same-origin fetch": post(**{"Sec-Fetch-Site": "same-origin", "Origin": d.url})}
    print(f"lifecycle: default POST {default.status_code} {default.text.strip()!r}, SIGHUP reloads {sighup}; "
          f"enabled: {enabled}")
    assert default.status_code == 403 and sighup
    assert enabled == {"no origin": 200, "same origin": 200, "foreign origin": 403, "origin null": 403,
                       "cross-site fetch": 403, "same-origin fetch": 200}


def test_listening_beyond_loopback_without_auth_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               ) -> None:
    """Given settings.listen 0.0.0.0 without basic auth, When the daemon starts (bound to loopback by the test)
    and check-config runs, Then both warn; with basic auth, or on 127.0.0.1, neither does."""
    def config_for(listen: str, users: tuple[BasicAuth, ...] = ()) -> Config:
        return Config(tmp_path / "c.yaml", Settings(listen=listen, state_dir=tmp_path / "state", interval=60),
                      (Target("rmx-a", registrars=(Registrar("127.0.0.1", 9),)),),
                      server=ServerConfig(basic_auth=users))

    password = SecretFile(secret(tmp_path / "web.pass", b"web-pass-3\n"))
    warned = {}
    for name, config in {"0.0.0.0 open": config_for("0.0.0.0:9817"),
                         "[::] open": config_for("[::]:9817"),
                         "0.0.0.0 with basic auth": config_for("0.0.0.0:9817", (BasicAuth("prom", password),)),
                         "127.0.0.1 open": config_for("127.0.0.1:9817")}.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING), running(config, runner=engine_runner({"mtls": mtls_probe()})):
            warned[name] = any("beyond loopback" in r.getMessage() for r in caplog.records)
    lines = {}
    for listen in ("0.0.0.0:9817", "127.0.0.1:9817"):
        (tmp_path / listen.split(":")[0]).mkdir()
        text, _ = daemon_dir(tmp_path / listen.split(":")[0], {"rmx-a": 9})
        text.write_text(text.read_text().replace(text.read_text().split('"')[1], listen, 1))
        out = subprocess.run([*CLI, "check-config", "-c", str(text)], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        lines[listen] = [line for line in out.splitlines() if "beyond loopback" in line]
    print(f"exposure warning at start: {warned}; check-config: {lines}")
    assert warned == {"0.0.0.0 open": True, "[::] open": True, "0.0.0.0 with basic auth": False,
                      "127.0.0.1 open": False}
    assert len(lines["0.0.0.0:9817"]) == 1 and lines["127.0.0.1:9817"] == []


def _connected_to(port: int) -> bool:
    """True when an established TCP connection on this host has ``port`` as its remote port."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{port:04X}") and fields[3] == "01":
            return True
    return False


def test_sigterm_does_not_wait_for_a_probe_thread_blocked_on_a_tarpit(tmp_path: Path) -> None:
    """Given a /probe run of a tarpit target with a 30 s deadline in flight, When the daemon gets SIGTERM,
    Then it exits 0 within the 5 s thread grace plus a margin, far inside TimeoutStopSec=20."""
    with peers.tarpit() as tarpit:
        config, port = daemon_dir(tmp_path, {"rmx-slow": tarpit}, deadline=30, interval=60)
        with serve(config, port) as d:
            scrape = subprocess.Popen([sys.executable, "-c", "import requests, sys; requests.get(sys.argv[1], "
                                       "headers={'X-Prometheus-Scrape-Timeout-Seconds': '60'}, timeout=60)",
                                       d.url + "/probe?target=rmx-slow"], stderr=subprocess.DEVNULL)
            try:
                eventually(lambda: "no probe in flight", lambda: _connected_to(tarpit), 10)
                time.sleep(0.5)  # well inside the TLS wait, far from the 30 s deadline
                code, stopped = d.stop(timeout=40)
            finally:
                scrape.kill()
                scrape.wait(10)
    print(f"SIGTERM with a probe thread blocked on a tarpit (deadline 30 s): exit {code} in {stopped:.2f} s")
    assert code == 0 and stopped < EXIT_GRACE + 3
