"""Past one machine: two daemons (`schedule: false`) sharded by a real Prometheus with the SHIPPED
config/prometheus/prometheus-sharded.yml (only its daemon addresses, file paths and intervals
replaced) and the shipped rules: every target is probed by exactly one daemon, the union covers
them all, and a stopped daemon shows as its share going ``up == 0`` with RmxdiagDown raised for
it, while the other share keeps being probed.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.fleet import fleet_pki, write_config
from tests.support.peers import eventually, free_port, need, started, wait_for_port

CONFIG = Path(__file__).resolve().parents[2] / "config" / "prometheus"
TARGETS = 12
INTERVAL = 1  # seconds: scrape and rule evaluation


def _prometheus_config(directory: Path, daemons: list[int], targets: list[str]) -> Path:
    """The shipped sharded config with its addresses, paths and intervals replaced, nothing else."""
    doc = yaml.safe_load((CONFIG / "prometheus-sharded.yml").read_text())
    sd = directory / "targets"
    sd.mkdir()
    (sd / "rmx.yml").write_text(yaml.safe_dump([{"targets": targets}]))
    doc["global"] = {"scrape_interval": f"{INTERVAL}s", "evaluation_interval": f"{INTERVAL}s"}
    doc["rule_files"] = [str(CONFIG / "rmxdiag.rules.yml")]
    assert len(doc["scrape_configs"]) == len(daemons)
    for job, port in zip(doc["scrape_configs"], daemons, strict=True):
        job["scrape_interval"], job["scrape_timeout"] = f"{INTERVAL}s", f"{INTERVAL}s"
        job["file_sd_configs"] = [{"files": [str(sd / "*.yml")], "refresh_interval": "1s"}]
        address = job["relabel_configs"][-1]
        assert address["target_label"] == "__address__"
        address["replacement"] = f"127.0.0.1:{port}"
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _probed(port: int) -> dict[str, float]:
    """Target -> last run timestamp, from a daemon's /metrics (a daemon lists what it has run)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("rmxdiag_last_run_timestamp_seconds{")}


def test_two_daemons_sharded_by_the_shipped_prometheus_config(tmp_path: Path) -> None:
    """Given 12 targets, two daemons with the same config and `schedule: false`, and Prometheus running the
    shipped sharded config and rules, When it scrapes, Then each target is probed by exactly one daemon and
    all are covered; When one daemon stops, Then its share goes up == 0 and RmxdiagDown is raised for exactly
    that share, while the other share keeps being probed."""
    prometheus = need("prometheus")
    files = fleet_pki(tmp_path / "pki", TARGETS)
    closed = free_port()  # the registrars refuse: a quick probe, a real answer all the same
    ports, prom_port = [free_port(), free_port()], free_port()
    configs = []
    for index, port in enumerate(ports):
        config = tmp_path / f"daemon{index}" / "rmxdiag.yaml"
        config.parent.mkdir()
        names = write_config(config, files, [closed], deadline=1, concurrency=8, listen=f"127.0.0.1:{port}",
                             schedule=False)
        configs.append(config)
    with started([sys.executable, "-m", "daemon.cli", "serve", "-c", str(configs[0])], tmp_path / "d0.log") as d0, \
         started([sys.executable, "-m", "daemon.cli", "serve", "-c", str(configs[1])], tmp_path / "d1.log") as d1, \
         started([prometheus, f"--config.file={_prometheus_config(tmp_path, ports, names)}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                 tmp_path / "prometheus.log"):
        for port, proc in zip(ports, (d0, d1), strict=True):
            wait_for_port(port, proc=proc, timeout=30)
        wait_for_port(prom_port, timeout=30)
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def up() -> dict[str, tuple[str, float]]:
            answer: dict[str, Any] = requests.get(api + "/query", params={"query": "up"}, timeout=5).json()
            return {r["metric"]["instance"]: (r["metric"]["job"], float(r["value"][1]))
                    for r in answer["data"]["result"]}

        # Then every target is scraped, each by one job (its shard), all up
        def all_up() -> dict[str, tuple[str, float]] | None:
            state = up()
            return state if len(state) == TARGETS and all(v == 1.0 for _, v in state.values()) else None

        shards = eventually("every target scraped and up", all_up, 60)
        share = {job: {n for n, (j, _) in shards.items() if j == job}
                 for job in ("rmxdiag-probe-0", "rmxdiag-probe-1")}
        assert share["rmxdiag-probe-0"] and share["rmxdiag-probe-1"], share
        # And each daemon ran exactly the targets of its shard: disjoint, covering every target
        def both() -> list[dict[str, float]] | None:
            seen = [_probed(port) for port in ports]
            return seen if {*seen[0], *seen[1]} == set(names) else None

        probed = eventually("both daemons ran their share", both, 30)
        assert set(probed[0]) == share["rmxdiag-probe-0"] and set(probed[1]) == share["rmxdiag-probe-1"]
        assert not set(probed[0]) & set(probed[1])

        # When daemon 1 stops
        d1.send_signal(signal.SIGTERM)
        d1.wait(15)
        stopped = time.time()
        # Then exactly its share goes up == 0, and the other share stays up
        eventually("the stopped share down", lambda: all(up()[n][1] == 0.0 for n in share["rmxdiag-probe-1"]), 30)
        assert all(up()[n][1] == 1.0 for n in share["rmxdiag-probe-0"])

        # And the shipped rules raise RmxdiagDown for exactly that share (pending: its `for` is 5 minutes)
        def down_alerts() -> set[str]:
            answer: dict[str, Any] = requests.get(api + "/alerts", timeout=5).json()
            return {a["labels"]["instance"] for a in answer["data"]["alerts"]
                    if a["labels"]["alertname"] == "RmxdiagDown"}

        eventually("RmxdiagDown for the stopped share", lambda: down_alerts() == share["rmxdiag-probe-1"], 30)
        # And the running daemon keeps probing its share
        eventually("the other share probed after the stop",
                   lambda: all(t > stopped for t in _probed(ports[0]).values()), 30)
