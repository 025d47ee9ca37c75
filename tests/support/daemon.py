"""Run the real daemon (aiohttp server, scheduler, webhook) in-process on port 0 for tests.

Probes are injected through the engine's ``runners`` (real engine, deadlines and snapshot), so
HTTP, exporter and webhook tests exercise every layer except the network probes themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.config.model import Config
from daemon.engine import run_target
from daemon.report import TargetReport
from daemon.serve.http import bind
from daemon.serve.scheduler import TargetRunner
from daemon.serve.service import Daemon, load_config
from probes import ProbeRunner
from probes.model import Finding, ProbeOutcome, ProbeStatus, Severity
from probes.mtls.outcome import Stage, sip_reason
from probes.mtls.result import MtlsResult, RegistrarResult
from probes.mtls.tls import CertInfo
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


def _cert(position: int, not_after: datetime) -> CertInfo:
    return CertInfo(position, f"CN=cert{position}", "CN=Lab CA", "1", "2025-01-01T00:00:00Z",
                    not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), not_after.timestamp(), ())


def mtls_result(sip_status: int = 200, client_chain: Sequence[datetime] = ()) -> MtlsResult:
    """The mtls probe's own result type: one registrar answering ``sip_status`` to OPTIONS over TLS 1.2,
    its Front End certificate valid until 2030-01-01, our chain expiring at ``client_chain``."""
    registrar = RegistrarResult(
        registrar="fe.lab.example:5061", address="127.0.0.1:5061", sni=None, stage=Stage.SIP,
        reason=sip_reason(sip_status), phases=(("resolve", 0.001), ("connect", 0.002), ("tls", 0.01), ("sip", 0.004)),
        tls_version="TLSv1.2", cipher=None, alert=None, alert_direction=None, after_handshake=True, verify_code=None,
        verify_message=None, ssl_reason=None, errno=None, client_cert_requested=True, client_cert_sent=True,
        client_cert_empty=False, ca_names=None, rmx_issuer=None, rmx_issuer_listed=None,
        server_chain=(_cert(0, datetime(2030, 1, 1, tzinfo=UTC)),), sip_status=sip_status, sip_reason_phrase=None,
        sip_server=None, ms_diagnostics=(), ladder=())
    return MtlsResult((registrar,), tuple(_cert(i, t) for i, t in enumerate(client_chain)))


def mtls_probe(faulty: Sequence[str] = ()) -> ProbeRunner:
    """An injected mtls probe: 200 OK for most targets, 403 + SIP_NOT_TRUSTED for ``faulty`` ones."""
    def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
        if target.name in faulty:
            return ProbeOutcome("mtls", ProbeStatus.OK, 0.02,
                                (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403 Forbidden"),),
                                result=mtls_result(sip_status=403), failure=("sip", "status_403"))
        soon = datetime.now(UTC) + timedelta(days=400)
        return ProbeOutcome("mtls", ProbeStatus.OK, 0.02, (Finding("MTLS_OK", Severity.INFO, "ok"),),
                            result=mtls_result(client_chain=(soon, soon)))
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
            listen: str = "127.0.0.1:0", sndbuf: int | None = None) -> Iterator[Running]:
    """Start a Daemon on its own event-loop thread; stop it and the thread on exit.

    ``sndbuf``: the listening socket's send buffer, inherited by accepted sockets (a small one keeps
    most of a large answer in the daemon's own write buffer, as a slow network link does)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="daemon-loop", daemon=True)
    thread.start()
    daemon = Daemon(config, loader=loader, runner=runner,
                    troubleshoot=troubleshoot or (lambda t, s: runner(t, s, {})))
    sock = bind(listen)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
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
