"""The daemon's web pages for 1,000 targets: server-side render time and weight, and whether a
browser still handles the overview.

The targets carry real reports: the embedded lab is run once for a healthy, an unknown-CA and a
SIP-403 scenario (every probe, real peers on loopback) and those reports are spread over 1,000
names (70 % healthy, 20 % unknown CA, 10 % 403). The overview (``/``) is rendered from the
snapshot exactly as the endpoint does (``daemon.serve.webpages``), beside the baseline of the same
run: ``/metrics`` of the same snapshot. Goal: the overview renders in under 200 ms. A target page
is measured too. When Debian's chromium and chromedriver are there, the 1,000-target overview is
loaded from a file in headless Chromium and its load time (navigation to the load event, layout
included) is reported (goal: under 3 s, so the page stays usable).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from daemon.config.model import Config
from daemon.lab.run import run_scenario
from daemon.report import TargetReport
from daemon.serve import exporter, webpages
from daemon.serve.snapshot import SnapshotHolder, TargetState
from probes.target import Settings, Target
from tests.bench.common import Row, print_table

TARGETS = 1000
MIX = (("healthy", 7), ("untrusted-ca", 2), ("not-trusted-app", 1))  # per 10 targets


def _median_ms(fn: Callable[[], object], runs: int = 15) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _lab_reports() -> dict[str, TargetReport]:
    reports = {}
    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-web-") as tmp:
        for scenario, _ in MIX:
            reports[scenario] = run_scenario(scenario, Path(tmp) / scenario).report
    return reports


def _snapshot(reports: dict[str, TargetReport]) -> tuple[Config, SnapshotHolder]:
    pattern = [scenario for scenario, share in MIX for _ in range(share)]
    names = [f"rmx-{i:04d}" for i in range(TARGETS)]
    config = Config(Path("bench.yaml"), Settings(), tuple(Target(n) for n in names))
    holder = SnapshotHolder()
    holder.set_targets(names)
    now = time.time()
    holder.put_many((n, TargetState(dataclasses.replace(reports[pattern[i % len(pattern)]], name=n), now - i))
                    for i, n in enumerate(names))
    return config, holder


def _browser_load_ms(page: str) -> float | None:
    """Navigation-to-load time of ``page`` opened from a file in headless Chromium (None without one)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from tests.support.browser import chromium

    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-web-") as tmp:
        path = Path(tmp) / "overview.html"
        path.write_text(page, encoding="utf-8")
        with chromium() as driver:
            samples = []
            for _ in range(3):
                driver.get("about:blank")
                driver.get(path.as_uri())
                timing = driver.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;")
                samples.append(float(timing))
            return statistics.median(samples)


def main() -> int:
    """Measure and print the table; non-zero when a goal is missed."""
    config, holder = _snapshot(_lab_reports())
    snap = holder.current
    summaries = webpages.RunSummaries()
    overview = webpages.overview(config, snap, None, summaries)
    overview_ms = _median_ms(lambda: webpages.overview(config, snap, None, summaries))
    target_ms = _median_ms(lambda: webpages.target(config, snap, None, summaries, "rmx-0007"))
    target_page = webpages.target(config, snap, None, summaries, "rmx-0007") or ""
    # (every target formatted during the render, as the web pages are: no lines prepared earlier)
    metrics_ms = _median_ms(lambda: (exporter.forget(), exporter.render(lambda: snap)))
    load_ms = None
    with contextlib.suppress(Exception):  # a browser that cannot start leaves the cell empty, not the bench
        load_ms = _browser_load_ms(overview)
    rows = [
        Row(f"/ render, {TARGETS} targets", overview_ms, "ms", f"/metrics {metrics_ms:.1f} ms",
            overview_ms / metrics_ms if metrics_ms else None, "< 200 ms", overview_ms < 200),
        Row(f"/ weight, {TARGETS} targets", len(overview.encode()) / 1024, "KiB"),
        Row("/targets/NAME render (unknown CA)", target_ms, "ms", "", None, "< 50 ms", target_ms < 50),
        Row("/targets/NAME weight", len(target_page.encode()) / 1024, "KiB"),
    ]
    if load_ms is not None:
        rows.append(Row(f"/ load in Chromium, {TARGETS} targets", load_ms, "ms", "", None, "< 3000 ms",
                        load_ms < 3000))
    else:
        print("chromium/chromedriver missing or failed: the browser cell is not measured")
    return print_table("Web pages (server-side render, weight, browser load)", rows)


if __name__ == "__main__":
    raise SystemExit(main())
