"""`rmxdiag run` over 200 targets, each with its OWN certificate and key file (same CA), 10 % of them
on a tarpit, deadline 2 s, concurrency 64, against two real Kamailio Front Ends; side by side with
Debian's prometheus-blackbox-exporter probing the same 200 targets (a ``tcp`` module per target:
TLS with that target's client certificate, the SIP OPTIONS, ``^SIP/2.0 200`` expected), 64 probes
in flight as Prometheus would send them. Then the peak RSS of `rmxdiag run` over 1,000 such targets.

CPU is the kernel's accounting of each measured process tree: `rmxdiag run`'s own (it starts
nothing), read with ``wait4``; the exporter's utime + stime from ``/proc``. `rmxdiag run` is
measured whole, as a user meets it: interpreter start-up, configuration, 200 targets, the report.
Goals (issue 16): wall <= deadline + 0.5 s with every healthy target ok; CPU per target <= 1.0x
blackbox's CPU per probe; peak RSS for 1,000 targets <= 80 MB. Medians of interleaved rounds.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from tests.bench.common import Row, installed_env, print_table
from tests.support.fleet import (
    blackbox_config,
    blackbox_exporter,
    fleet_pki,
    holding_tarpit,
    proc_cpu,
    registrars,
    write_config,
)

TARGETS, BIG, DEADLINE, CONCURRENCY, ROUNDS = 200, 1000, 2.0, 64, 5
CACHE = Path(tempfile.gettempdir()) / "rmxdiag-bench-fleet"  # keys are generated once per machine


child_env = installed_env  # the measured CLI runs with bytecode cached, as an installed package


def run_cli(config: Path) -> tuple[float, float, float, dict[str, object]]:
    """(wall s, CPU s, peak RSS MiB, JSON report) of one `rmxdiag run` (its own process, reaped with wait4)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "-c", str(config), "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env())
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped here: keep Popen from waiting again
    wall = time.monotonic() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(out)


def blackbox_round(port: int, pid: int, count: int, tarpit_every: int = 10) -> tuple[float, float, int]:
    """(wall s, CPU s of the exporter, probes that succeeded) for ``count`` probes, 64 in flight."""
    def one(index: int) -> bool:
        target = "127.0.0.1:{}".format(_ports["tarpit"] if index % tarpit_every == 0
                                       else _ports["kam"][index % len(_ports["kam"])])
        request = urllib.request.Request(f"http://127.0.0.1:{port}/probe?module=rmx-{index:04d}&target={target}",
                                         headers={"X-Prometheus-Scrape-Timeout-Seconds": f"{DEADLINE + 0.5:g}"})
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 -- loopback URL built here
            return b"\nprobe_success 1" in resp.read()

    before, start = proc_cpu(pid), time.monotonic()
    with cf.ThreadPoolExecutor(CONCURRENCY) as pool:
        ok = sum(pool.map(one, range(count)))
    return time.monotonic() - start, proc_cpu(pid) - before, ok


_ports: dict[str, object] = {}


def _statuses(doc: dict[str, object]) -> tuple[int, int]:
    """(healthy targets ok, tarpits blamed as anything but a TLS timeout or overload)."""
    targets = doc["targets"]
    assert isinstance(targets, list)
    ok = sum(t["status"] == "ok" for i, t in enumerate(targets) if i % 10)
    wrong = sum(bool({h["code"] for h in t["hints"]} - {"REGISTRAR_TLS_TIMEOUT"})
                for i, t in enumerate(targets) if i % 10 == 0)
    return ok, wrong


def main() -> int:
    """Measure and print the table."""
    rows: list[Row] = []
    files = fleet_pki(CACHE / f"fleet-{BIG}", BIG)  # the first 200 for the run, all 1,000 for its memory
    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-run-") as tmp, contextlib.ExitStack() as stack:
        d = Path(tmp)
        kam = stack.enter_context(registrars(d, files, 2))
        pit = stack.enter_context(holding_tarpit())
        _ports.update(kam=kam, tarpit=pit)
        config = d / "rmxdiag.yaml"
        write_config(config, files, kam, deadline=DEADLINE, concurrency=CONCURRENCY, tarpit_port=pit,
                     only=TARGETS)
        bb_port, bb_pid = stack.enter_context(blackbox_exporter(d, blackbox_config(d / "bb.yml", files, only=TARGETS,
                                                                                   timeout=DEADLINE)))
        run_cli(config)  # warm-up: bytecode, page cache
        blackbox_round(bb_port, bb_pid, TARGETS)
        walls, cpus, oks, wrongs, bb_walls, bb_cpus, bb_oks = [], [], [], [], [], [], []
        for _ in range(ROUNDS):
            wall, cpu, _, doc = run_cli(config)
            ok, wrong = _statuses(doc)
            walls.append(wall)
            cpus.append(cpu / TARGETS)
            oks.append(ok)
            wrongs.append(wrong)
            bb_wall, bb_cpu, bb_ok = blackbox_round(bb_port, bb_pid, TARGETS)
            bb_walls.append(bb_wall)
            bb_cpus.append(bb_cpu / TARGETS)
            bb_oks.append(bb_ok)
        print(f"rounds: rmxdiag walls {[round(w, 2) for w in walls]} ok {oks}; blackbox walls "
              f"{[round(w, 2) for w in bb_walls]} ok {bb_oks}")
        healthy = TARGETS - TARGETS // 10
        wall, cpu, bb_cpu = statistics.median(walls), statistics.median(cpus) * 1000, statistics.median(bb_cpus) * 1000
        rows.append(Row(f"run wall, 200 distinct keys, min ok {min(oks)}/{healthy}", wall, "s",
                        f"blackbox {statistics.median(bb_walls):.2f} s", wall / DEADLINE, "<= 2.5 s, all ok",
                        wall <= DEADLINE + 0.5 and min(oks) == healthy and max(wrongs) == 0))
        rows.append(Row("blackbox_exporter tcp+TLS+OPTIONS, CPU/probe", bb_cpu, "ms"))
        rows.append(Row("run CPU/target (whole process)", cpu, "ms", f"{bb_cpu:.2f} ms blackbox", cpu / bb_cpu,
                        "<= 1.00x", cpu <= bb_cpu))
        big = d / "rmxdiag-1000.yaml"
        write_config(big, files, kam, deadline=DEADLINE, concurrency=CONCURRENCY, tarpit_port=pit)
        big_wall, big_cpu, rss, doc = run_cli(big)
        statuses = Counter(str(t["status"]) for t in doc["targets"])  # type: ignore[attr-defined]
        rows.append(Row(f"run peak RSS, 1000 targets ({big_wall:.1f} s, {big_cpu / BIG * 1000:.1f} ms/target)", rss,
                        "MB", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), None, "<= 80 MB", rss <= 80))
    return print_table("rmxdiag run over distinct-key targets vs blackbox_exporter", rows)


if __name__ == "__main__":
    raise SystemExit(main())
