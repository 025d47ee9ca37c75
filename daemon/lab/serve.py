"""`rmxdiag lab --serve`: the real daemon scheduling the lab target, until Ctrl-C.

The daemon (``daemon.serve.service``) is started in-process on 127.0.0.1 with an ephemeral port, with
one target: the scenario's simulated RMX against its simulated Front End. No config file is
written or needed; a SIGHUP reload therefore keeps the lab configuration (the reload fails, as
for any unreadable file).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from daemon.config.model import Config
from daemon.lab.run import lab_settings, scenario_setup


def urls(port: int, target: str) -> dict[str, str]:
    """The endpoints a newcomer opens, by name."""
    base = f"http://127.0.0.1:{port}"
    return {"page": f"{base}/targets/{target}", "overview": f"{base}/", "metrics": f"{base}/metrics",
            "report": f"{base}/api/v1/report?target={target}",
            "probe": f"{base}/probe?target={target}"}


async def _serve(config: Config, out: TextIO, target: str) -> None:
    from daemon.serve.service import Daemon

    daemon = Daemon(config)
    await daemon.start()
    for name, url in urls(daemon.http.port, target).items():
        out.write(f"  {name:<8}: {url}\n")
    out.write("Serving the lab (the daemon re-probes every 15 s); press Ctrl-C to stop.\n")
    out.flush()
    await daemon.serve_until_stopped()


def serve(name: str, workdir: Path, out: TextIO = sys.stdout) -> int:
    """Bring the scenario up and serve it with the daemon until SIGINT/SIGTERM; 0 on a clean stop."""
    with scenario_setup(name, workdir) as setup:
        config = Config(source=workdir / "rmxdiag-lab.yaml", settings=lab_settings(workdir),
                        targets=(setup.target,))
        out.write(f"rmxdiag LAB (serve) - scenario '{name}': {setup.scenario.summary}\n"
                  f"This is a simulation on 127.0.0.1: no real RMX or Lync/Skype for Business is involved.\n"
                  f"  Front End: 127.0.0.1:{setup.port}; files in {workdir}\n")
        asyncio.run(_serve(config, out, setup.target.name))
    return 0
