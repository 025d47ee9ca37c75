"""Typed configuration of the daemon: what ``daemon.config.load`` builds from YAML.

Probe-facing types (Target, Settings, ...) live in ``probes.target``; this module adds the
daemon's own sections (HTTP endpoint, Alertmanager webhook, notifications, remediation actions,
report store). Secrets are SecretFile references; their values are read at use, never stored.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from probes.target import SecretFile, Settings, Target


@dataclass(frozen=True)
class BasicAuth:
    """One user allowed on the HTTP endpoint; the password is compared in constant time."""

    username: str
    password: SecretFile


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP endpoint (exporter-toolkit style web config)."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    basic_auth: tuple[BasicAuth, ...] = ()
    max_connections: int = 256
    header_timeout: float = 5.0  # seconds for the request line + headers
    body_timeout: float = 10.0  # seconds for the whole body
    write_timeout: float = 10.0  # seconds an answer may wait for a client that does not read it
    probe_reuse: float = 5.0  # seconds a finished /probe run answers further scrapes of its target (0: never)
    max_body_bytes: int = 1024 * 1024
    # POST /-/reload, off unless asked for (like Prometheus' --web.enable-lifecycle); SIGHUP always works.
    enable_lifecycle: bool = False
    # Where users reach the web pages (like Prometheus' --web.external-url), without a trailing
    # slash; None: derived from settings.listen (see Config.external_url).
    external_url: str | None = None
    # Host names (besides loopback, IP addresses, the listen host, external_url's host and this
    # machine's name) a request's Host header may carry; any other is refused (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookConfig:
    """``POST /api/v1/alerts`` (Alertmanager webhook v4)."""

    token: SecretFile | None = None  # bearer token; None disables the endpoint (404)
    target_label: str = "target"  # alert label that names a configured target
    cooldown: float = 300.0  # one troubleshooting run per target per cooldown
    live_capture: bool = False  # add a bounded live capture to alert-driven runs


@dataclass(frozen=True)
class NotifyConfig:
    """Where a troubleshooting run's summary is posted (chat or ticket webhook)."""

    url: str
    token: SecretFile | None = None  # sent as a bearer token
    timeout: float = 10.0


@dataclass(frozen=True)
class ActionConfig:
    """A remediation action bound to a hint code: an argv command or an HTTP request.

    ``dry_run`` is the default: the action is recorded as it would run, not executed.
    """

    code: str
    targets: tuple[str, ...] = ()  # empty: every target
    command: tuple[str, ...] = ()  # argv, never a shell string
    http_url: str | None = None
    http_method: str = "POST"
    timeout: float = 30.0
    dry_run: bool = True


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; swapped all-or-nothing on reload."""

    source: Path
    settings: Settings
    targets: tuple[Target, ...]
    server: ServerConfig = field(default_factory=ServerConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    notify: NotifyConfig | None = None
    actions: tuple[ActionConfig, ...] = ()
    reports_keep: int = 50
    # False: no scheduled runs; targets run only on GET /probe and alerts (Prometheus-driven,
    # hashmod-sharded deployments where each daemon must not probe every target itself).
    schedule: bool = True

    def target(self, name: str) -> Target | None:
        """The target called ``name``, or None."""
        return next((t for t in self.targets if t.name == name), None)

    def external_url(self, port: int | None = None) -> str:
        """The base URL of the daemon's pages: ``server.external_url``, else derived from
        ``settings.listen`` (``port``: the port actually bound, for ``:0``; a wildcard address
        becomes this host's name; https when the endpoint serves TLS)."""
        if self.server.external_url:
            return self.server.external_url
        host, _, listen_port = self.settings.listen.rpartition(":")
        if host.strip("[]") in ("", "0.0.0.0", "::"):  # noqa: S104 (recognising a wildcard, not binding one)
            host = socket.gethostname()
        scheme = "https" if self.server.tls_cert is not None else "http"
        return f"{scheme}://{host}:{port or int(listen_port)}"
