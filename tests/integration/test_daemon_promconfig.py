"""The shipped Prometheus, Alertmanager and Grafana files: promtool/amtool clean, rule unit tests pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.support.peers import need

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_rules_check_and_unit_tests_pass() -> None:
    promtool = need("promtool")
    # When promtool checks the rules and runs their unit tests
    check = _run([promtool, "check", "rules", str(CONFIG / "prometheus" / "rmxdiag.rules.yml")])
    unit = _run([promtool, "test", "rules", "rmxdiag.rules.test.yml"], cwd=CONFIG / "prometheus" / "tests")
    # Then both succeed
    assert check.returncode == 0, check.stdout + check.stderr
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_scrape_configs_are_valid(tmp_path: Path) -> None:
    promtool = need("promtool")
    for name in ("prometheus.yml", "prometheus-sharded.yml"):
        # Given the shipped config with its rule file pointed at the repository copy
        doc = yaml.safe_load((CONFIG / "prometheus" / name).read_text())
        if "rule_files" in doc:
            doc["rule_files"] = [str(CONFIG / "prometheus" / "rmxdiag.rules.yml")]
        staged = tmp_path / name
        staged.write_text(yaml.safe_dump(doc))
        # Then promtool accepts it
        result = _run([promtool, "check", "config", str(staged)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_example_is_valid_and_routes_to_the_webhook() -> None:
    amtool = need("amtool")
    path = CONFIG / "alertmanager" / "alertmanager.yml"
    result = _run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(path.read_text())["receivers"]}
    hook = receivers["rmxdiag-troubleshoot"]["webhook_configs"][0]
    assert hook["url"].endswith("/api/v1/alerts") and hook["http_config"]["authorization"]["type"] == "Bearer"


def test_dashboard_panels_all_query_prometheus() -> None:
    dash = json.loads((CONFIG / "grafana" / "dashboards" / "rmxdiag.json").read_text())
    titles = [p["title"] for p in dash["panels"]]
    # Then each panel has a PromQL query and the required views are present
    assert all(t.get("expr") for p in dash["panels"] for t in p["targets"])
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for wanted in ("Verdict", "Active hints", "MTLS phase", "SIP", "RMX chain", "Front End chain", "alarms",
                   "history"):
        assert any(wanted in t for t in titles), wanted
    provisioning = yaml.safe_load((CONFIG / "grafana" / "provisioning" / "dashboards" / "rmxdiag.yml").read_text())
    assert provisioning["providers"][0]["type"] == "file"
