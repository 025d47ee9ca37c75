"""Alert-driven troubleshooting through the real webhook: auth, cooldown, allow-list, store, actions."""

from __future__ import annotations

import json
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from daemon.config.model import ActionConfig, Config, NotifyConfig, WebhookConfig
from probes.model import ErrorKind, Finding, ProbeOutcome, ProbeStatus, Severity, failed
from probes.target import ProbeContext, Registrar, SecretFile, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running, troubleshoot_runner
from tests.support.peers import eventually

TOKEN = "webhook-token-canary-7f3a"  # noqa: S105 (a test canary, searched for in outputs)


class CountingListener:
    """A TCP listener that counts connections (proof of which hosts the daemon contacted)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[tuple[CountingListener, CountingListener]]:
    a, b = CountingListener(), CountingListener()
    yield a, b
    a.close()
    b.close()


def connecting_probe(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """A tiny real TCP probe: connect to the target's first registrar (the host an alert must not choose)."""
    reg = target.registrars[0]
    start = time.monotonic()
    try:
        with socket.create_connection((reg.host or "", reg.port), timeout=ctx.remaining()):
            pass
    except OSError:
        return failed("mtls", ErrorKind.DEADLINE, "connect failed", time.monotonic() - start)
    return ProbeOutcome("mtls", ProbeStatus.OK, time.monotonic() - start,
                        (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403"),))


def _token(tmp_path: Path) -> SecretFile:
    path = tmp_path / "webhook.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return SecretFile(path)


def _alert(target: str, status: str = "firing") -> dict[str, object]:
    return {"version": "4", "status": status, "receiver": "rmxdiag", "groupKey": "{}:{}",
            "alerts": [{"status": status, "labels": {"alertname": "RmxdiagHintCritical", "target": target},
                        "annotations": {}, "startsAt": "2026-11-26T00:00:00Z"}]}


def _post(url: str, doc: object, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(url + "/api/v1/alerts", json=doc, headers=headers, timeout=5)


def test_alerts_need_the_token_run_only_configured_targets_once_per_cooldown(
        tmp_path: Path, listeners: tuple[CountingListener, CountingListener]) -> None:
    # Given one configured target whose registrar is listener A, and listener B that nobody configured
    configured, stranger = listeners
    target = Target("rmx-hq", registrars=(Registrar("127.0.0.1", configured.port),), deadline=2.0, interval=3600)
    config = Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "state"), (target,),
                    webhook=WebhookConfig(token=_token(tmp_path), cooldown=300))
    runs: list[str] = []

    def counting(t: Target, s: Settings) -> object:
        runs.append(t.name)
        return troubleshoot_runner({"mtls": connecting_probe})(t, s)

    with running(config, runner=engine_runner({"mtls": mtls_probe()}), troubleshoot=counting) as d:  # type: ignore[arg-type]
        # When the token is missing or wrong
        assert _post(d.url, _alert("rmx-hq"), token=None).status_code == 401
        assert _post(d.url, _alert("rmx-hq"), token="wrong").status_code == 401  # noqa: S106
        # When an alert names an unconfigured host (listener B's address)
        answer = _post(d.url, _alert(f"127.0.0.1:{stranger.port}"))
        assert answer.status_code == 202
        assert answer.json()["targets"] == {f"127.0.0.1:{stranger.port}": "unknown_target"}
        # When 100 identical alerts for the configured target arrive
        codes = {_post(d.url, _alert("rmx-hq")).status_code for _ in range(100)}
        # Then every one is accepted, one run starts, and its report is stored (0600) and served
        assert codes == {202}
        eventually("a stored run", lambda: requests.get(d.url + "/api/v1/report/runs", timeout=5).json()["runs"])
        assert runs == ["rmx-hq"]
        run_id = requests.get(d.url + "/api/v1/report/runs", timeout=5).json()["runs"][0]
        doc = requests.get(d.url + f"/api/v1/report/runs/{run_id}", timeout=5).json()
        assert doc["trigger"] == "alertmanager" and doc["targets"][0]["name"] == "rmx-hq"
        assert doc["targets"][0]["hints"][0]["code"] == "SIP_NOT_TRUSTED"
        stored = tmp_path / "state" / "reports" / f"{run_id}.json"
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert not list((tmp_path / "state" / "reports").glob(".*"))  # no temporary file left
        # And resolved alerts start nothing
        assert _post(d.url, _alert("rmx-hq", "resolved")).json()["targets"] == {}
    # And only the configured registrar was ever contacted
    assert stranger.count == 0
    assert configured.count >= 1
    for path in (tmp_path / "state").rglob("*"):
        assert TOKEN not in path.read_text() if path.is_file() else True


def test_bad_payloads_are_400_and_never_5xx(tmp_path: Path) -> None:
    # Given a daemon with a webhook
    config = Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "state"), (Target("a"),),
                    webhook=WebhookConfig(token=_token(tmp_path)))
    with running(config, runner=engine_runner({"mtls": mtls_probe()})) as d:
        # When the body is not JSON or not a webhook document
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        not_json = requests.post(d.url + "/api/v1/alerts", data=b"{nope", headers=headers, timeout=5)
        no_alerts = requests.post(d.url + "/api/v1/alerts", data=b'{"x": 1}', headers=headers, timeout=5)
        # Then they are 400 (Alertmanager does not retry 4xx)
        assert (not_json.status_code, no_alerts.status_code) == (400, 400)


class _Sink:
    """A real HTTP server that records POSTed JSON (the chat webhook / HTTP action receiver)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        received = self.received = []  # type: list[dict[str, object]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append({"body": json.loads(self.rfile.read(length)),
                                 "auth": self.headers.get("Authorization")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_action_runs_then_reprobe_shows_the_hint_cleared_and_notify_posts(tmp_path: Path) -> None:
    # Given a target with a critical hint that a remediation command fixes (it creates a marker file)
    marker = tmp_path / "fixed"
    script = tmp_path / "fix.py"
    script.write_text("import json, os, sys\n"
                      "doc = json.load(sys.stdin)\n"
                      "assert doc['target'] == os.environ['RMXDIAG_TARGET'] == 'rmx-hq'\n"
                      f"open({str(marker)!r}, 'w').write(doc['hint']['code'])\n")

    def probe(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        findings = () if marker.exists() else (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403"),)
        return ProbeOutcome("mtls", ProbeStatus.OK, 0.01, findings)

    sink = _Sink()
    notify_token = tmp_path / "notify.token"
    notify_token.write_text("notify-canary\n")
    notify_token.chmod(0o600)
    config = Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "state"), (Target("rmx-hq", interval=3600),),
                    webhook=WebhookConfig(token=_token(tmp_path)),
                    notify=NotifyConfig(sink.url, token=SecretFile(notify_token)),
                    actions=(ActionConfig("SIP_NOT_TRUSTED", command=(sys.executable, str(script)), dry_run=False,
                                          timeout=10),
                             ActionConfig("SIP_NOT_TRUSTED", http_url=sink.url)))  # dry run by default
    try:
        with running(config, runner=engine_runner({"mtls": probe}),
                     troubleshoot=troubleshoot_runner({"mtls": probe})) as d:
            # When Alertmanager reports the target
            assert _post(d.url, _alert("rmx-hq")).status_code == 202
            eventually("a stored run", lambda: requests.get(d.url + "/api/v1/report/runs", timeout=5).json()["runs"])
            run_id = requests.get(d.url + "/api/v1/report/runs", timeout=5).json()["runs"][0]
            doc = requests.get(d.url + f"/api/v1/report/runs/{run_id}", timeout=5).json()
            metrics = requests.get(d.url + "/metrics", timeout=5).text
            eventually("the notification", lambda: sink.received)
            page_url = next((r["body"].get("url") for r in sink.received  # type: ignore[union-attr]
                             if "root_cause" in r["body"]), None)  # type: ignore[operator]
            page = requests.get(str(page_url), timeout=5)
    finally:
        sink.close()
    # Then the command ran, the dry-run HTTP action did not, and the re-probe shows the hint cleared
    outcomes = sorted((a["kind"], a["outcome"]) for a in doc["actions"])
    assert outcomes == [("command", "ok"), ("http", "dry_run")]
    assert marker.read_text() == "SIP_NOT_TRUSTED"
    assert doc["after_actions"]["cleared"] == {"SIP_NOT_TRUSTED": True}
    assert 'rmxdiag_remediation_actions_total{code="SIP_NOT_TRUSTED",outcome="ok",target="rmx-hq"} 1.0' in metrics
    assert 'rmxdiag_remediation_actions_total{code="SIP_NOT_TRUSTED",outcome="dry_run",target="rmx-hq"} 1.0' in metrics
    # And the notification carried the root cause and its fix steps, with the bearer token
    posted = [r for r in sink.received if "root_cause" in r["body"]]  # type: ignore[operator]
    assert posted and posted[0]["body"]["root_cause"]["code"] == "SIP_NOT_TRUSTED"  # type: ignore[index]
    assert posted[0]["body"]["root_cause"]["remediation"]  # type: ignore[index]
    assert posted[0]["auth"] == "Bearer notify-canary"
    # And it named the run's page (the default external URL: the address the daemon listens on),
    # which serves the run
    assert page_url == f"{d.url}/runs/{run_id}" and posted[0]["body"]["text"].endswith(f". Details: {page_url}")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert run_id in page.text and "SIP_NOT_TRUSTED" in page.text
