"""`rmxdiag lab --serve`: the real daemon serves the lab target until Ctrl-C, then everything stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.browser import read_urls
from tests.support.peers import children_of


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (a loopback URL we printed)
        return str(answer.read().decode())


@pytest.mark.slow
def test_serve_exposes_metrics_and_report_until_ctrl_c(tmp_path: Path) -> None:
    # Given the lab serving the not-trusted-app scenario with its own TMPDIR
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "lab", "--scenario", "not-trusted-app", "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        urls = read_urls(proc, 60, until="report")
        # Then it prints the URLs of the target's page, /metrics and /api/v1/report
        assert set(urls) >= {"page", "metrics", "report"}, urls
        # And /metrics carries the diagnosis as a hint metric once the first sweep is in
        deadline = time.monotonic() + 30
        metrics = ""
        while 'code="SIP_NOT_TRUSTED"' not in metrics and time.monotonic() < deadline:
            time.sleep(0.5)
            metrics = _get(urls["metrics"])
        assert 'rmxdiag_hint_active{code="SIP_NOT_TRUSTED",severity="critical",target="lab-not-trusted-app"} 1.0' \
            in metrics
        report = json.loads(_get(urls["report"]))
        assert report["targets"][0]["name"] == "lab-not-trusted-app"
        assert "SIP_NOT_TRUSTED" in [h["code"] for h in report["targets"][0]["hints"]]
        # And the target's page shows the diagnosis: the verdict and the root cause with its fix
        page = _get(urls["page"])
        assert '<span class="verdict v-critical" data-status="critical">CRITICAL</span>' in page
        assert 'data-code="SIP_NOT_TRUSTED"' in page and "New-CsTrustedApplicationComputer" in page
        # When Ctrl-C arrives
        os.killpg(proc.pid, signal.SIGINT)
        # Then it stops cleanly, leaves no process and removes its temporary files
        assert proc.wait(20) == 0
        assert children_of(proc.pid) == []
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
