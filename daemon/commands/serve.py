"""`rmxdiag serve`: the daemon (scheduler, /metrics, /probe, reports, Alertmanager webhook).

Exit codes: 0 after SIGTERM, 78 (EX_CONFIG) when the configuration or a secret it names is
unusable at start (one line on stderr naming the file; systemd's RestartPreventExitStatus=78
then stops the restart loop).

SIGTERM ends the process within seconds whatever its children and probes do: every child process
tree is killed, and probe threads still inside a network call after :data:`EXIT_GRACE` seconds are
not waited for (the unit's TimeoutStopSec is 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time

from daemon.commands._config_arg import add_config, config_path
from probes import redact

EX_CONFIG = 78
EXIT_GRACE = 5.0  # seconds for worker threads to finish after the daemon stopped
log = logging.getLogger("rmxdiag.daemon")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """-c FILE and the log level."""
    add_config(parser)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=os.environ.get("RMXDIAG_LOG_LEVEL", "info"), help="log verbosity on stderr")


def execute(args: argparse.Namespace) -> int:
    """Load the config, start the daemon and serve until SIGTERM."""
    from daemon.serve.service import Daemon, StartupError, load_config, preflight
    from probes import children

    # The CLI already configured stderr logging (warning, or more with -v); a daemon logs its
    # one-line run summaries at info, so lower the threshold unless -v asked for even more.
    root = logging.getLogger()
    root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(args.log_level.upper())))
    redact.install(root)  # no secret value the daemon read reaches a log line (probes.redact)
    try:
        config = load_config(config_path(args))
        preflight(config)  # before the event loop starts: the error is the only line on stderr
    except StartupError as exc:
        sys.stderr.write(f"rmxdiag: error: {exc}\n")
        return EX_CONFIG

    # Orphaned descendants of actions and captures are reparented here, not to PID 1, so their
    # trees can always be found and ended (probes.children explains the choice).
    children.become_subreaper()

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

    code = asyncio.run(main())
    children.stop_all(final=True)
    return _leave(code)


def _leave(code: int) -> int:
    """``code`` once the worker threads ended; after EXIT_GRACE seconds, end the process without them."""
    end = time.monotonic() + EXIT_GRACE
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join(max(0.0, end - time.monotonic()))
    stuck = [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]
    if stuck:
        # Threads blocked in a probe's network call end at their deadline; the process need not wait.
        log.warning("exiting with %d worker thread(s) still inside a probe", len(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
