"""The daemon: config (re)load, scheduler, alert-driven runs and the HTTP endpoint on one loop.

Start-up failures (bad config, unreadable secret, undecryptable PFX, TLS files that do not
load, a listen address that cannot be bound) raise :class:`StartupError` with one line naming the
file; ``rmxdiag serve`` turns it into exit 78 (EX_CONFIG), which the unit's
``RestartPreventExitStatus=78`` keeps from becoming a restart loop. A reload is all-or-nothing:
any failure keeps the running configuration and sets ``rmxdiag_config_last_reload_successful`` 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import pkcs12

from daemon.config import load as config_load
from daemon.config.model import Config
from daemon.engine import run_target, shutdown_probe_pool
from daemon.report import TargetReport
from daemon.serve import sdnotify
from daemon.serve.access import exposure_warning
from daemon.serve.http import HttpServer, bind, tls_context
from daemon.serve.ondemand import OnDemand
from daemon.serve.scheduler import Scheduler, TargetRunner, default_runner
from daemon.serve.snapshot import Snapshot, SnapshotHolder, TargetState
from daemon.serve.webhook import Troubleshooter, TroubleshootRunner, firing_targets
from probes import children
from probes.fileio import read_capped
from probes.model import InputError
from probes.target import SecretFile, Settings, Target

log = logging.getLogger("rmxdiag.daemon")

ConfigLoader = Callable[[Path], Config]
SWEEP_INTERVAL = 10.0  # seconds between sweeps for escaped child processes


class StartupError(Exception):
    """The daemon cannot start or adopt a configuration; the message is one line naming the file."""


def load_config(path: Path) -> Config:
    """The YAML loader (:func:`daemon.config.load.load_config`); its ConfigError becomes StartupError."""
    try:
        return config_load.load_config(path)
    except config_load.ConfigError as exc:
        raise StartupError(str(exc)) from None


def _secret(secret: SecretFile | None, what: str, empty_hint: str = "") -> bytes | None:
    """The secret's value; StartupError naming the file when it cannot be read or is empty."""
    if secret is None:
        return None
    try:
        value = secret.read()
    except OSError as exc:
        raise StartupError(f"{secret.path}: {what} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not value:
        # An empty file must never mean "no password": it would open the endpoint or send no credential.
        raise StartupError(f"{secret.path}: {what} is empty" + (f" ({empty_hint})" if empty_hint else ""))
    return value


def preflight(config: Config) -> None:
    """Check every secret and TLS file the configuration refers to (StartupError naming the file).

    Every secret file must hold a value: an empty one is refused for every kind of secret.
    """
    _secret(config.webhook.token, "the webhook token file")
    if config.notify is not None:
        _secret(config.notify.token, "the notification token file")
    for user in config.server.basic_auth:
        _secret(user.password, f"the password file of user {user.username!r}")
    try:
        tls_context(config.server)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"{config.server.tls_cert}: the HTTPS certificate/key do not load "
                           f"({type(exc).__name__})") from None
    for target in config.targets:
        if target.alarms.xml_api is not None:
            _secret(target.alarms.xml_api.user, f"the XML API user file of target {target.name}")
            _secret(target.alarms.xml_api.password, f"the XML API password file of target {target.name}")
        source = target.certificate
        if source is not None and source.kind == "pfx" and source.path is not None:
            password = _secret(source.password, f"the PFX password file of target {target.name}",
                               "for a PFX without a password, leave out password_file")
            try:
                # The certificate probe's checked reader: a regular file of at most 1 MiB.
                data = read_capped(source.path, f"PFX of target {target.name}")
                pkcs12.load_key_and_certificates(data, password or None)
            except InputError as exc:
                raise StartupError(str(exc)) from None
            except (ValueError, TypeError):
                # cryptography raises ValueError for a wrong password and a corrupt file alike.
                raise StartupError(f"{source.path}: PFX of target {target.name} cannot be decrypted "
                                   f"with the password in {source.password.path if source.password else '(none)'}"
                                   " (wrong password or corrupt file)") from None


def troubleshoot_runner(target: Target, settings: Settings) -> TargetReport:
    """The production alert-driven run: every probe, on demand (a live capture is allowed)."""
    return run_target(target, settings, on_demand=True)


class Daemon:
    """One running rmxdiag daemon (usable in-process by tests: :meth:`start` / :meth:`stop`)."""

    def __init__(self, config: Config, *, loader: ConfigLoader = load_config,
                 runner: TargetRunner = default_runner,
                 troubleshoot: TroubleshootRunner = troubleshoot_runner) -> None:
        self.config = config
        self.loader = loader
        self.runner = runner
        self.holder = SnapshotHolder()
        self.scheduler = Scheduler(self.holder, runner)
        self.troubleshooter = Troubleshooter(self.holder, troubleshoot)
        self.http = HttpServer(self)
        self.started = time.monotonic()
        self.reloads_failed = 0
        self.rendered: tuple[Snapshot, bytes] | None = None  # /metrics text of the last snapshot
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reload_lock = asyncio.Lock()
        self._reload_asked = 0  # reload requests so far
        self._reload_done = 0  # requests answered by a finished reload
        self._reload_ok = True
        # /probe runs get their own pool, shut down without waiting at stop (asyncio.run would wait
        # for the default executor's threads, i.e. for a probe's whole deadline).
        self.ondemand = OnDemand(max(4, config.settings.concurrency), runner, self.holder.put)

    # -- configuration ---------------------------------------------------------------------------
    def _apply(self, config: Config) -> None:
        self.config = config
        self.scheduler.apply(config.targets, config.settings, schedule=config.schedule)
        self.troubleshooter.configure(config)
        self.ondemand.reset()  # a /probe after a reload never gets a run of what it replaced

    def _read(self) -> Config | str:
        """The config file read again and checked (blocking); the failure message when it is not valid."""
        path = self.config.source
        try:
            config = self.loader(path)
            preflight(config)
        except StartupError as exc:
            return str(exc)
        except Exception as exc:  # any other failure must also keep the running config
            log.debug("reload traceback", exc_info=True)
            return f"{path}: {type(exc).__name__}"
        return config

    def _adopt(self, config: Config | str) -> bool:
        """Adopt what :meth:`_read` returned, or count its failure (on the event loop)."""
        if isinstance(config, str):
            self.reloads_failed += 1
            self.holder.set_config_ok(False)
            log.error("reload failed, keeping the previous configuration: %s", config)
            return False
        old = self.config
        if (config.settings.listen, config.server.tls_cert, config.server.tls_key) != (
                old.settings.listen, old.server.tls_cert, old.server.tls_key):
            log.warning("settings.listen and the HTTPS files take effect at the next restart only")
        self._apply(config)
        self.holder.set_config_ok(True)
        log.info("configuration reloaded from %s: %d targets", config.source, len(config.targets))
        return True

    async def reload_async(self) -> bool:
        """Read the config file off the event loop and adopt it on the loop, all-or-nothing.

        Reloads run one at a time and the latest wins: requests that arrive while one runs are all
        answered by the single reload that starts after it (it reads the file as it is then), so a
        burst of SIGHUPs and POSTs costs two reads, and the scheduler never sees two at once.
        """
        self._reload_asked += 1
        asked = self._reload_asked
        async with self._reload_lock:
            if self._reload_done >= asked:  # a reload that started after this request answered it
                return self._reload_ok
            if self._stop.is_set():  # stopping: no configuration is adopted any more
                return False
            covers = self._reload_asked
            try:
                config = await asyncio.get_running_loop().run_in_executor(None, self._read)
            except RuntimeError:  # the executor is shut down: the daemon is stopping
                return False
            if self._stop.is_set():
                return False
            self._reload_ok = self._adopt(config)
            self._reload_done = covers
            return self._reload_ok

    def troubleshooter_names(self, payload: Any) -> list[str]:
        """Target names in the firing alerts of an Alertmanager payload (ValueError if malformed)."""
        return firing_targets(payload, self.config.webhook.target_label)

    # -- on-demand probing -----------------------------------------------------------------------
    async def probe_now(self, target: Target, budget: float) -> TargetState:
        """Run ``target`` now within ``budget`` seconds, queueing included (the /probe endpoint)."""
        return await self.ondemand.probe(target, self.config.settings, self.scheduler.cache, budget,
                                         self.config.server.probe_reuse)

    def ready(self) -> bool:
        """Ready once running with a valid config and a scheduler that makes progress (and still runs)."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks) and self.scheduler.healthy()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        # The scheduler and the watchdog run until stop(): ending earlier is a bug. Say so once, and
        # let readiness fail and the watchdog pings stop (systemd restarts the service).
        if not task.cancelled() and task.exception() is not None and not self._stop.is_set():
            exc = task.exception()
            log.error("the %s task stopped with a bug (%s): no more scheduled runs; /-/ready fails",
                      task.get_name(), type(exc).__name__)
            log.debug("task traceback", exc_info=exc)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, sock: socket.socket | None = None) -> None:
        """Bind (unless given a socket), serve HTTP, start scheduling; StartupError on failure."""
        preflight(self.config)
        if sock is None:
            try:
                sock = bind(self.config.settings.listen)
            except (OSError, ValueError) as exc:
                raise StartupError(f"{self.config.source}: settings.listen {self.config.settings.listen!r} "
                                   f"cannot be bound ({getattr(exc, 'strerror', None) or type(exc).__name__})"
                                   ) from None
        self._apply(self.config)
        exposed = exposure_warning(self.config)
        if exposed:
            log.warning("%s", exposed)
        await self.http.start(self.config, sock)
        self.troubleshooter.port = self.http.port
        self._tasks = [asyncio.create_task(self.scheduler.run(self._stop), name="scheduler"),
                       asyncio.create_task(self._watchdog(), name="watchdog")]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        sdnotify.notify("READY=1", f"STATUS=serving on port {self.http.port}, {len(self.config.targets)} targets")
        log.info("rmxdiag serving on port %d with %d targets", self.http.port, len(self.config.targets))

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval()
        swept = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - swept >= SWEEP_INTERVAL:
                # Reap escaped descendants that ended on their own (they are this process's children).
                swept = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, children.sweep)
            # Ping only while the loop runs and the scheduler makes progress: a stalled loop or a
            # wedged pool stops the pings and systemd restarts the service.
            if interval is not None and self.ready():
                sdnotify.notify("WATCHDOG=1")
            snap = self.holder.current
            sdnotify.notify(f"STATUS={len(snap.targets)}/{len(snap.order)} targets probed, "
                            f"{self.scheduler.runs} runs, {self.troubleshooter.started} alert-driven runs")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval or 10.0)

    def request_stop(self) -> None:
        """Ask :meth:`serve_until_stopped` to return (signal-safe on the loop)."""
        self._stop.set()
        # Once stopping, SIGHUP is ignored for good: no reload is adopted, and a SIGHUP that arrives
        # after the loop dropped its handlers cannot end the process (exit 129 instead of 0).
        # The order matters: asyncio's remove_signal_handler() puts the default action (terminate)
        # back before anything could set SIG_IGN, and the loop's close() does the same for every
        # handler it still lists; so SIG_IGN first, then the loop forgets SIGHUP without touching it.
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread / no running loop
            loop = asyncio.get_running_loop()
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            handlers = getattr(loop, "_signal_handlers", None)  # asyncio's unix loop keeps them here
            if isinstance(handlers, dict):
                handlers.pop(signal.SIGHUP, None)

    async def stop(self) -> None:
        """Stop serving and scheduling; probe threads end at their own deadlines."""
        sdnotify.notify("STOPPING=1")
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A task that died of a bug was logged when it ended: the rest of stop() must still run.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.http.stop()
        self.scheduler.close()
        self.troubleshooter.close()
        self.ondemand.close()
        shutdown_probe_pool()  # its idle threads would hold the exit for the whole grace
        # A running action or capture would hold the exit until its deadline (the interpreter joins
        # the threads that wait for them): end every child process tree now.
        stopped = children.stop_all()
        if stopped:
            log.info("stopped %d running child process tree(s)", stopped)

    async def serve_until_stopped(self) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._sighup()))
        await self._stop.wait()
        await self.stop()

    async def _sighup(self) -> None:
        if self._stop.is_set():
            return
        sdnotify.notify("RELOADING=1")
        await self.reload_async()
        sdnotify.notify("READY=1")
