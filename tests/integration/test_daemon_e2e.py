"""End to end: Kamailio Front End, `rmxdiag serve`, a real Prometheus and a real Alertmanager.

Two targets share one Kamailio MTLS registrar: ``rmx-ok`` presents the trusted RMX certificate
(200 to OPTIONS), ``rmx-bad`` a certificate from the same CA with another CN (403 +
ms-diagnostics, i.e. SIP_NOT_TRUSTED). Prometheus scrapes /metrics and /probe and loads the
shipped rules; every PromQL expression of the dashboard and of the rules is evaluated against it.
An alert sent through Alertmanager (shipped receiver example) reaches the webhook and the
triggered run's report appears.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from daemon.lab import pki
from tests.conftest import LabPKI
from tests.support.kamailio import KamailioFactory, kamailio_fe  # noqa: F401 (fixture)
from tests.support.peers import eventually, free_port, need, started, wait_for_port

CONFIG = Path(__file__).resolve().parents[2] / "config"
TOKEN = "e2e-webhook-token-canary"  # noqa: S105 (a test canary)
pytestmark = [pytest.mark.peer, pytest.mark.slow]


def _secret(path: Path, data: bytes) -> Path:
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


def _daemon_config(tmp_path: Path, lab_pki: LabPKI, fe_port: int, port: int) -> Path:
    # rmx-bad: a sound certificate for its own FQDN, but that FQDN is not a trusted application
    # computer on the Front End (Kamailio trusts only rmx.lab.example).
    rogue = pki.issue(pki.name("rogue.lab.example"), lab_pki.issuing, cdp=["http://127.0.0.1:9/lab.crl"])
    targets = []
    for name, issued, fqdn in (("rmx-ok", lab_pki.rmx, "rmx.lab.example"),
                               ("rmx-bad", rogue, "rogue.lab.example")):
        files = issued.write(tmp_path / "certs", name)
        targets.append({"name": name, "fqdn": fqdn,
                        "certificate": {"cert": str(files["cert"]), "key": str(files["key"]),
                                        "chain": str(files["chain"])},
                        "ca_bundle": str(lab_pki.ca_bundle(tmp_path)),
                        "registrars": [{"host": "127.0.0.1", "port": fe_port, "sni": "pool.lab.example"}],
                        "interval": 5, "deadline": 4})
    doc = {"settings": {"listen": f"127.0.0.1:{port}", "state_dir": str(tmp_path / "state")},
           "targets": targets,
           "webhook": {"token_file": str(_secret(tmp_path / "webhook.token", TOKEN.encode() + b"\n")),
                       "cooldown": 60}}
    path = tmp_path / "rmxdiag.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _prometheus_config(tmp_path: Path, daemon_port: int) -> Path:
    doc = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(CONFIG / "prometheus" / "rmxdiag.rules.yml")],
           "scrape_configs": [
               {"job_name": "rmxdiag", "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]},
               # the shipped multi-target job, pointed at this daemon and these targets
               {**next(j for j in yaml.safe_load((CONFIG / "prometheus" / "prometheus.yml").read_text())
                       ["scrape_configs"] if j["job_name"] == "rmxdiag-probe"),
                "scrape_interval": "5s", "scrape_timeout": "4s",
                "static_configs": [{"targets": ["rmx-ok", "rmx-bad"]}]}]}
    probe_job = doc["scrape_configs"][1]
    probe_job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{daemon_port}"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _alertmanager_config(tmp_path: Path, daemon_port: int) -> Path:
    doc = yaml.safe_load((CONFIG / "alertmanager" / "alertmanager.yml").read_text())
    doc["route"].update({"group_wait": "0s", "group_interval": "1s"})
    hook = next(r for r in doc["receivers"] if r["name"] == "rmxdiag-troubleshoot")["webhook_configs"][0]
    hook["url"] = f"http://127.0.0.1:{daemon_port}/api/v1/alerts"
    hook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "webhook.token")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _expressions() -> list[tuple[str, str, bool]]:
    """(origin, PromQL, must return data) for every dashboard query and every rule."""
    exprs: list[tuple[str, str, bool]] = []
    dash = json.loads((CONFIG / "grafana" / "dashboards" / "rmxdiag.json").read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$target", ".*").replace("$__rate_interval", "1m")
            # Without an alarms source or a remediation action these two views are empty by design.
            optional = "rmx_active_alarms" in expr or "remediation_actions_total" in expr
            exprs.append((f"dashboard: {panel['title']}", expr, not optional))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":  # label_values(METRIC, label) -> METRIC must exist
            exprs.append((f"variable {var['name']}", var["definition"].split("(")[1].split(",")[0], True))
    rules = yaml.safe_load((CONFIG / "prometheus" / "rmxdiag.rules.yml").read_text())
    must_fire = {"RmxdiagHintCritical", "RmxdiagProbeFailing"}  # rmx-bad has both conditions
    for group in rules["groups"]:
        for rule in group["rules"]:
            exprs.append((f"rule {rule['alert']}", str(rule["expr"]), rule["alert"] in must_fire))
    return exprs


def test_daemon_prometheus_alertmanager_end_to_end(tmp_path: Path, lab_pki: LabPKI,
                                                   kamailio_fe: KamailioFactory) -> None:  # noqa: F811
    prometheus, alertmanager = need("prometheus"), need("prometheus-alertmanager")
    # Given a Kamailio Front End that trusts only the RMX's CN
    fe = kamailio_fe(lab_pki.fe, lab_pki.ca_bundle(tmp_path), lab_pki.fqdn)
    port, prom_port, am_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    config = _daemon_config(tmp_path, lab_pki, fe.port, port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with started([sys.executable, "-m", "daemon.cli", "serve", "-c", str(config), "--log-level", "info"],
                 tmp_path / "daemon.log", env=env) as daemon, \
         started([prometheus, f"--config.file={_prometheus_config(tmp_path, port)}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                 tmp_path / "prometheus.log"), \
         started([alertmanager, f"--config.file={_alertmanager_config(tmp_path, port)}",
                  f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                  "--cluster.listen-address="], tmp_path / "alertmanager.log"):
        wait_for_port(port, proc=daemon, timeout=20)
        wait_for_port(prom_port, timeout=30)
        wait_for_port(am_port, timeout=30)

        # Then the daemon's metrics show one healthy and one untrusted target
        def metrics() -> str:
            text = requests.get(url + "/metrics", timeout=5).text
            done = all(f'rmxdiag_last_run_timestamp_seconds{{target="{n}"}}' in text for n in ("rmx-ok", "rmx-bad"))
            return text if done else ""

        text = eventually("both targets probed", metrics, 40)
        assert 'rmxdiag_probe_success{probe="mtls",target="rmx-ok"} 1.0' in text, text
        assert 'rmxdiag_probe_success{probe="mtls",target="rmx-bad"} 0.0' in text
        assert 'rmxdiag_sip_response_status{target="rmx-ok"} 200.0' in text
        assert 'rmxdiag_sip_response_status{target="rmx-bad"} 403.0' in text
        assert 'rmxdiag_hint_active{code="SIP_NOT_TRUSTED",severity="critical",target="rmx-bad"} 1.0' in text
        assert 'rmxdiag_tls_version_info{target="rmx-ok",version="TLSv1.' in text
        assert 'rmxdiag_mtls_phase_duration_seconds{phase="tls",target="rmx-ok"}' in text
        assert 'rmxdiag_cert_not_after_timestamp_seconds{position="0",role="server",target="rmx-ok"}' in text
        assert 'rmxdiag_cert_not_after_timestamp_seconds{position="0",role="client",target="rmx-ok"}' in text

        # And Prometheus has scraped both jobs
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def query(expr: str) -> dict[str, Any]:
            answer: dict[str, Any] = requests.get(api + "/query", params={"query": expr}, timeout=10).json()
            return answer

        eventually("scrapes of both jobs", lambda: len(query('up == 1')["data"]["result"]) == 3, 40)
        eventually("/probe series", lambda: query('rmxdiag_probe_success{job="rmxdiag-probe"}')["data"]["result"], 40)
        # Two samples of every scrape at least, so that increase()/range queries have points
        def samples() -> float:
            result = query("min(count_over_time(up[5m]))")["data"]["result"]
            return float(result[0]["value"][1]) if result else 0.0
        eventually("two samples of every scrape", lambda: samples() >= 2, 40)

        # When every PromQL expression of the dashboard and the rules is evaluated
        problems = []
        for origin, expr, must_have_data in _expressions():
            answer = query(expr)
            if answer.get("status") != "success":
                problems.append(f"{origin}: {answer.get('error')}")
            elif must_have_data and not answer["data"]["result"]:
                problems.append(f"{origin}: no data for {expr}")
        # Then none fails and those that must show data do
        assert not problems, problems

        # When an alert for rmx-bad (and one naming an unconfigured host) goes through Alertmanager
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        alerts = [{"labels": {"alertname": "RmxdiagHintCritical", "target": name, "code": "SIP_NOT_TRUSTED",
                              "severity": "critical"}, "startsAt": now} for name in ("rmx-bad", "evil.example")]
        posted = requests.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alerts, timeout=10)
        assert posted.status_code == 200, posted.text

        # Then the triggered run's report appears, for the configured target only
        runs = eventually("a stored troubleshooting run",
                     lambda: requests.get(url + "/api/v1/report/runs", timeout=5).json()["runs"], 40)
        assert len(runs) == 1 and runs[0].endswith("-rmx-bad"), runs
        doc = requests.get(url + f"/api/v1/report/runs/{runs[0]}", timeout=5).json()
        assert doc["trigger"] == "alertmanager"
        assert [h["code"] for h in doc["targets"][0]["hints"]][:1] == ["SIP_NOT_TRUSTED"]
    log = (tmp_path / "daemon.log").read_text()
    assert "troubleshooting run" in log and "target=rmx-bad" in log
    assert "Traceback" not in log and TOKEN not in log
