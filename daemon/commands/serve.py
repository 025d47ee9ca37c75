"""`rmxdiag serve`: the daemon (scheduler, /metrics, /probe, reports, Alertmanager webhook).

Exit codes: 0 after SIGTERM, 78 (EX_CONFIG) when the configuration or a secret it names is
unusable at start (one line on stderr naming the file; systemd's RestartPreventExitStatus=78
then stops the restart loop).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from daemon.commands._config_arg import add_config, config_path

EX_CONFIG = 78


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """-c FILE and the log level."""
    add_config(parser)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=os.environ.get("RMXDIAG_LOG_LEVEL", "info"), help="log verbosity on stderr")


def execute(args: argparse.Namespace) -> int:
    """Load the config, start the daemon and serve until SIGTERM."""
    from daemon.serve.service import Daemon, StartupError, load_config

    # The CLI already configured stderr logging (warning, or more with -v); a daemon logs its
    # one-line run summaries at info, so lower the threshold unless -v asked for even more.
    root = logging.getLogger()
    root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(args.log_level.upper())))
    try:
        config = load_config(config_path(args))
    except StartupError as exc:
        sys.stderr.write(f"rmxdiag: error: {exc}\n")
        return EX_CONFIG

    async def main() -> int:
        daemon = Daemon(config)
        try:
            await daemon.start()
        except StartupError as exc:
            sys.stderr.write(f"rmxdiag: error: {exc}\n")
            await daemon.stop()
            return EX_CONFIG
        await daemon.serve_until_stopped()
        return 0

    return asyncio.run(main())
