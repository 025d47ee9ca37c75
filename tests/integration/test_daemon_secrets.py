"""Canary secrets never leave the daemon: logs, /metrics, every response, stored reports, repr()."""

from __future__ import annotations

import base64
import logging
import urllib.parse
from pathlib import Path

import pytest
import requests

from daemon.config.model import BasicAuth, Config, NotifyConfig, ServerConfig, WebhookConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually

CANARIES = {"web": "web-pass-canary-91c2", "hook": "hook-token-canary-5d7e", "notify": "notify-canary-aa01"}


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), raw.hex(), urllib.parse.quote(secret)]


def _secret(tmp_path: Path, name: str) -> SecretFile:
    path = tmp_path / name
    path.write_text(CANARIES[name] + "\n")
    path.chmod(0o600)
    return SecretFile(path)


def test_no_canary_in_logs_metrics_responses_reports_or_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Given a daemon whose every secret is a canary, and a config file that fails to reload
    config = Config(tmp_path / "missing.yaml", Settings(state_dir=tmp_path / "state"),
                    (Target("rmx", registrars=(Registrar("fe"),), interval=3600),),
                    server=ServerConfig(basic_auth=(BasicAuth("prom", _secret(tmp_path, "web")),),
                                        enable_lifecycle=True),
                    webhook=WebhookConfig(token=_secret(tmp_path, "hook")),
                    notify=NotifyConfig("http://127.0.0.1:9/hook", token=_secret(tmp_path, "notify"), timeout=1))
    bodies: list[str] = [repr(config)]
    with running(config, runner=engine_runner({"mtls": mtls_probe(faulty=["rmx"])})) as d:
        auth = "Basic " + base64.b64encode(f"prom:{CANARIES['web']}".encode()).decode()
        wrong = "Basic " + base64.b64encode(b"prom:" + CANARIES["web"].encode()[::-1]).decode()
        # When every endpoint is used with good and bad credentials, a reload fails, an alert runs
        for headers in ({"Authorization": auth}, {"Authorization": wrong}, {}):
            for path in ("/metrics", "/api/v1/report", "/-/healthy", "/-/ready", "/probe?target=rmx",
                         "/api/v1/report/runs"):
                bodies.append(requests.get(d.url + path, headers=headers, timeout=5).text)
            bodies.append(requests.post(d.url + "/-/reload", headers=headers, timeout=10).text)
        alert = {"alerts": [{"status": "firing", "labels": {"target": "rmx"}}]}
        for token in (CANARIES["hook"], CANARIES["hook"][:-1], ""):
            answer = requests.post(d.url + "/api/v1/alerts", json=alert, timeout=5,
                                   headers={"Authorization": f"Bearer {token}"})
            bodies.append(answer.text + str(dict(answer.headers)))
        eventually("the stored run", lambda: requests.get(d.url + "/api/v1/report/runs", headers={
            "Authorization": auth}, timeout=5).json()["runs"])
        bodies.append(requests.get(d.url + "/metrics", headers={"Authorization": auth}, timeout=5).text)
        # The notification goes to a closed port: its failure is logged (with no token in it).
        eventually("the failed notification in the log",
                   lambda: any(r.getMessage().startswith("notification for rmx") for r in caplog.records))
    stored = [p.read_text() for p in (tmp_path / "state").rglob("*.json")]
    assert stored, "the alert-driven run was not stored"
    everything = "\n".join(bodies + stored + [r.getMessage() for r in caplog.records]
                           + [str(r.exc_info) for r in caplog.records if r.exc_info])
    # Then no form of any canary appears anywhere, nor key material
    for secret in CANARIES.values():
        for form in _forms(secret):
            assert form not in everything, form
    assert "PRIVATE KEY" not in everything
    assert "reload failed" in everything  # the failed reload really happened
