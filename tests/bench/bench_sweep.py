"""The daemon's scheduled sweep of 1,000 targets with the REAL MTLS probe (and the certificate probe):
each target its own certificate and key file, two real Kamailio Front Ends, every 10th target on a
tarpit; side by side with Debian's prometheus-blackbox-exporter probing the same 1,000 targets.

`rmxdiag serve` runs as a child (``MALLOC_ARENA_MAX=2`` as in the systemd unit), every target on a
short interval so that sweeps follow each other (CPU-bound on 2 cores): :data:`SWEEPS` of them, not
100 (100 sweeps of 1,000 real handshakes take over 5 minutes of CPU here). Its CPU per target run
is its ``/proc`` CPU over the steady sweeps divided by the runs they finished (counted from
``/metrics``, polled every 2 s, which the daemon's CPU includes); RSS is sampled at each sweep.
The ``/metrics`` render is timed in-process on a 1,000-target snapshot of real lab reports, as a
scrape does it (each target's lines were formatted by the thread that finished its run), and with
every target formatted during the scrape, beside prometheus_client rendering the same snapshot.
Goals (issue 16): CPU per target <= 1.0x blackbox's per probe; render < 100 ms; RSS flat.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import requests

from tests.bench.bench_run import CACHE, child_env
from tests.bench.common import Row, print_table
from tests.support.fleet import (
    blackbox_config,
    blackbox_exporter,
    fleet_pki,
    holding_tarpit,
    proc_cpu,
    registrars,
    write_config,
)
from tests.support.peers import free_port, kill_group, wait_for_port

TARGETS, DEADLINE, INTERVAL, CONCURRENCY = 1000, 1.0, 6.0, 64
SWEEPS = int(os.environ.get("RMXDIAG_BENCH_SWEEPS", "20"))
WARM = 3  # sweeps before the CPU window and the RSS reference


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _last_runs(port: int) -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("rmxdiag_last_run_timestamp_seconds{")}


def _render_ms() -> tuple[float, float, float]:
    """(formatting every target, lines prepared, prometheus_client) median ms, 1,000 targets of real lab reports."""
    from daemon.serve import exporter
    from tests.bench.bench_web import _lab_reports, _snapshot

    _, holder = _snapshot(_lab_reports())
    snap = holder.current
    cold, warm, client = [], [], []
    for _ in range(7):
        exporter.forget()  # every target changed since the last scrape, none prepared
        start = time.perf_counter()
        exporter.render(lambda: snap)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        exporter.render(lambda: snap)
        warm.append(time.perf_counter() - start)
        start = time.perf_counter()
        exporter.render_with_client(lambda: snap)
        client.append(time.perf_counter() - start)
    assert exporter.render(lambda: snap) == exporter.render_with_client(lambda: snap)
    return tuple(statistics.median(v) * 1000 for v in (cold, warm, client))  # type: ignore[return-value]


def _blackbox_cpu(port: int, pid: int, kam: list[int], pit: int) -> float:
    """Exporter CPU per probe over one pass of the 1,000 targets, 64 in flight."""
    def one(index: int) -> None:
        target = f"127.0.0.1:{pit if index % 10 == 0 else kam[index % len(kam)]}"
        url = f"http://127.0.0.1:{port}/probe?module=rmx-{index:04d}&target={target}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()

    before = proc_cpu(pid)
    with cf.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(TARGETS)))
    return (proc_cpu(pid) - before) / TARGETS


def main() -> int:
    """Measure and print the table."""
    files = fleet_pki(CACHE / f"fleet-{TARGETS}", TARGETS)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-sweep-") as tmp, contextlib.ExitStack() as stack:
        d = Path(tmp)
        kam = stack.enter_context(registrars(d, files, 2))
        pit = stack.enter_context(holding_tarpit())
        bb_port, bb_pid = stack.enter_context(blackbox_exporter(d, blackbox_config(d / "bb.yml", files,
                                                                                   timeout=DEADLINE)))
        _blackbox_cpu(bb_port, bb_pid, kam, pit)  # warm-up
        bb = statistics.median(_blackbox_cpu(bb_port, bb_pid, kam, pit) for _ in range(3)) * 1000
        port = free_port()
        config = d / "rmxdiag.yaml"
        write_config(config, files, kam, deadline=DEADLINE, concurrency=CONCURRENCY, tarpit_port=pit,
                     interval=INTERVAL, listen=f"127.0.0.1:{port}")
        with (d / "serve.log").open("wb") as log:
            serve = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve", "-c", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, env={**child_env(), "MALLOC_ARENA_MAX": "2"},
                                     start_new_session=True)
        stack.callback(kill_group, serve)
        started = time.time()
        wait_for_port(port, proc=serve, timeout=60)
        counts: dict[str, int] = {}
        last: dict[str, float] = {}
        rss: dict[int, float] = {}
        first_sweep = window_cpu = window_runs = float("nan")
        cpu_at_warm = runs_at_warm = None
        deadline = time.monotonic() + 60 + SWEEPS * INTERVAL * 4
        while time.monotonic() < deadline:
            for name, stamp in _last_runs(port).items():
                if last.get(name) != stamp:
                    counts[name] = counts.get(name, 0) + 1
                    last[name] = stamp
            floor = min(counts.values()) if len(counts) == TARGETS else 0
            if floor >= 1 and math.isnan(first_sweep):
                first_sweep = max(last.values()) - started
            rss.setdefault(floor, _rss_mib(serve.pid))
            total = sum(counts.values())
            if floor >= WARM and cpu_at_warm is None:
                cpu_at_warm, runs_at_warm = proc_cpu(serve.pid), total
            if floor >= SWEEPS:
                window_cpu, window_runs = proc_cpu(serve.pid) - (cpu_at_warm or 0.0), total - (runs_at_warm or 0)
                break
            time.sleep(2.0)
        http_ms = []
        for _ in range(5):
            start = time.perf_counter()
            _last_runs(port)
            http_ms.append((time.perf_counter() - start) * 1000)
        sweeps = min(counts.values()) if len(counts) == TARGETS else 0
    per_run = window_cpu / window_runs * 1000 if window_runs else float("nan")
    cold, warm, client = _render_ms()
    reference = rss.get(WARM) or float("nan")
    end = rss.get(max(rss)) if rss else float("nan")
    print(f"RSS by sweep: {', '.join(f'{k}: {v:.0f}' for k, v in sorted(rss.items()))} MB; "
          f"/metrics over HTTP during sweeps {statistics.median(http_ms):.0f} ms")
    rows += [
        Row(f"first full sweep, {TARGETS} real MTLS targets", first_sweep, "s", f"deadline {DEADLINE:g} s"),
        Row("blackbox_exporter, CPU/probe (1000 targets)", bb, "ms"),
        Row(f"sweep CPU/target run ({int(window_runs)} runs)", per_run, "ms", f"{bb:.2f} ms blackbox",
            per_run / bb, "<= 1.00x", per_run <= bb),
        Row("/metrics render at a scrape, 1000 targets", warm, "ms", f"client {client:.1f} ms", warm / client,
            "< 100 ms", warm < 100),
        Row("/metrics render, formatting all 1000 (informational)", cold, "ms", f"client {client:.1f} ms",
            cold / client),
        Row(f"daemon RSS after {sweeps} sweeps", end, "MB", f"at sweep {WARM}: {reference:.1f} MB",
            end / reference, "flat (+<10%)", sweeps >= SWEEPS and end < reference * 1.1),
    ]
    return print_table(f"daemon sweeps of {TARGETS} real MTLS targets ({SWEEPS} sweeps, interval {INTERVAL:g} s)",
                       rows)


if __name__ == "__main__":
    raise SystemExit(main())
