"""Run the real daemon (aiohttp server, scheduler, webhook) in-process on port 0 for tests.

Probes are injected through the engine's ``runners`` (real engine, deadlines and snapshot), so
HTTP, exporter and webhook tests exercise every layer except the network probes themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.config.model import Config
from daemon.engine import ProbeRunner, run_target
from daemon.report import TargetReport
from daemon.serve.http import bind
from daemon.serve.scheduler import TargetRunner
from daemon.serve.service import Daemon, load_config
from probes.model import Finding, ProbeOutcome, ProbeStatus, Severity
from probes.target import ProbeContext, Settings, Target


def engine_runner(probes: dict[str, ProbeRunner]) -> TargetRunner:
    """A scheduler runner: the real engine with ``probes`` as the probe entry points."""
    def run(target: Target, settings: Settings, cache: dict[Any, Any]) -> TargetReport:
        return run_target(target, settings, cache=cache, runners=probes)
    return run


def troubleshoot_runner(probes: dict[str, ProbeRunner]) -> Callable[[Target, Settings], TargetReport]:
    """An alert-driven runner: the real engine, on demand, with ``probes``."""
    def run(target: Target, settings: Settings) -> TargetReport:
        return run_target(target, settings, on_demand=True, runners=probes)
    return run


@dataclass(frozen=True)
class Cert:
    """The shape the exporter reads from a chain entry."""

    not_after: datetime


@dataclass(frozen=True)
class MtlsLikeResult:
    """An mtls-probe-shaped result for exporter tests (field names the exporter adapters read)."""

    phases: dict[str, float] = field(default_factory=lambda: {"resolve": 0.001, "connect": 0.002,
                                                              "tls": 0.01, "sip": 0.004})
    tls_version: str = "TLSv1.2"
    sip_status: int | None = 200
    server_chain: tuple[Cert, ...] = (Cert(datetime(2030, 1, 1, tzinfo=UTC)),)
    client_chain: tuple[Cert, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"tls_version": self.tls_version, "sip_status": self.sip_status}

    def text_lines(self) -> list[str]:
        return [f"tls {self.tls_version}"]


def mtls_probe(faulty: Sequence[str] = ()) -> ProbeRunner:
    """An injected mtls probe: 200 OK for most targets, 403 + SIP_NOT_TRUSTED for ``faulty`` ones."""
    def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        if target.name in faulty:
            return ProbeOutcome("mtls", ProbeStatus.OK, 0.02,
                                (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403 Forbidden"),),
                                result=MtlsLikeResult(sip_status=403), failure=("sip", "status_403"))
        soon = datetime.now(UTC) + timedelta(days=400)
        return ProbeOutcome("mtls", ProbeStatus.OK, 0.02, (Finding("MTLS_OK", Severity.INFO, "ok"),),
                            result=MtlsLikeResult(client_chain=(Cert(soon), Cert(soon))))
    return run


@dataclass
class Running:
    """A daemon serving on loopback."""

    daemon: Daemon
    port: int
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        """Base URL (plain HTTP)."""
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the daemon's loop thread and return its result."""
        done: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_call(fn), self.loop)  # type: ignore[assignment]
        return done.result(10)


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


@contextlib.contextmanager
def running(config: Config, *, runner: TargetRunner, troubleshoot: Callable[[Target, Settings], TargetReport]
            | None = None, loader: Callable[[Path], Config] = load_config,
            listen: str = "127.0.0.1:0") -> Iterator[Running]:
    """Start a Daemon on its own event-loop thread; stop it and the thread on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="daemon-loop", daemon=True)
    thread.start()
    daemon = Daemon(config, loader=loader, runner=runner,
                    troubleshoot=troubleshoot or (lambda t, s: runner(t, s, {})))
    sock = bind(listen)
    try:
        asyncio.run_coroutine_threadsafe(daemon.start(sock), loop).result(15)
        yield Running(daemon, daemon.http.port, loop)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(daemon.stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()
