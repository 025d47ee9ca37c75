"""``rmxdiag check-config``: validate a configuration and show what would be probed per target."""

from __future__ import annotations

import argparse
import sys

from daemon.commands._config_arg import add_config, load
from daemon.config.load import ConfigError
from daemon.config.model import Config
from probes.target import Target

EXIT_UNKNOWN = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag check-config``."""
    add_config(parser)


def execute(args: argparse.Namespace) -> int:
    """0 and a summary (first line ``OK: FILE: valid, N target(s)``); 3 and one ``file:line:`` line when not."""
    from daemon.serve.service import StartupError, preflight

    try:
        config = load(args)
        # The same secret checks `rmxdiag serve` makes at start (password files, PFX decryption,
        # HTTPS files): "valid" here means the daemon will start with it.
        preflight(config)
    except (ConfigError, StartupError) as exc:
        from daemon.firstline import status_text

        sys.stderr.write(f"rmxdiag: error: {exc}\n")
        sys.stdout.write(f"UNKNOWN: {status_text(str(exc))}\n")  # the status line a check plugin shows
        return EXIT_UNKNOWN
    sys.stdout.write("\n".join(describe(config)) + "\n")
    return 0


def describe(config: Config) -> list[str]:
    """What the daemon and ``rmxdiag run`` would do with ``config``, one line per fact."""
    from probes import applicable

    s = config.settings
    lines = [f"OK: {config.source}: valid, {len(config.targets)} target(s)",
             f"settings: listen {s.listen}, every {s.interval:g}s, {s.concurrency} at once, "
             f"probe deadline {s.deadline:g}s, state in {s.state_dir}, expiry warning {s.expiry_warning_days} days"]
    for target in config.targets:
        lines.append("")
        lines.append(f"target {target.name}: firmware {target.firmware}, fqdn {target.fqdn or '-'}, "
                     f"signaling IP {target.signaling_ip or '-'}, every {target.interval:g}s, "
                     f"deadline {target.deadline:g}s, probes: {', '.join(applicable(target))}")
        lines.extend(f"  {line}" for line in _target_lines(target))
    lines.append("")
    lines.extend(_daemon_lines(config))
    return lines


def _target_lines(t: Target) -> list[str]:
    lines: list[str] = []
    cert = t.certificate
    if cert is not None:
        if cert.kind == "fetch":
            what = f"fetched from the RMX's TLS listener {cert.fetch_address}"
        else:
            extra = [f"{label} {path}" for label, path in (("key", cert.key), ("chain", cert.chain)) if path]
            if cert.password is not None:
                extra.append(f"password from {cert.password.path}")
            what = f"{cert.kind} {cert.path}" + (f" ({', '.join(extra)})" if extra else "")
        lines.append(f"certificate: {what}; expiry warning {t.expiry_warning_days} days"
                     + ("; revocation checked" if t.check_revocation else ""))
    if t.ca_bundle:
        lines.append(f"trust anchors: {t.ca_bundle}")
    for r in t.registrars:
        where = f"{r.host}:{r.port}" if r.host else f"SRV _sipinternaltls._tcp.{r.srv_domain} (port {r.port} default)"
        lines.append(f"mtls: {where}, SNI {r.sni or r.host or 'per SRV target'}, TLS {r.tls_min}-{r.tls_max}"
                     + (", then SIP OPTIONS" if r.sip_options else ", handshake only"))
    a = t.alarms
    sources = [f"report {p}" for p in a.report_files]
    sources += [f"{label} {p}" for label, p in (("snmptrapd log", a.snmptrapd_log), ("syslog", a.syslog_file)) if p]
    if a.xml_api is not None:
        sources.append(f"XML API {a.xml_api.url}")
    if sources:
        lines.append("alarms: " + "; ".join(sources))
    c = t.capture
    captures = [f"file {p}" for p in c.files] + ([f"directory {c.directory}"] if c.directory else [])
    if c.interface:
        captures.append(f"live on {c.interface} for {c.duration:g}s (on-demand runs only)")
    if captures:
        lines.append(f"capture (port {c.port}): " + "; ".join(captures))
    return lines


def _daemon_lines(config: Config) -> list[str]:
    from daemon.serve.access import exposure_warning

    srv, hook = config.server, config.webhook
    lines = [f"server: {'HTTPS' if srv.tls_cert else 'plain HTTP'}, "
             f"{len(srv.basic_auth) or 'no'} basic-auth user(s), at most {srv.max_connections} connections, "
             f"POST /-/reload {'on' if srv.enable_lifecycle else 'off (SIGHUP reloads)'}",
             "webhook: " + (f"on, alerts name targets by label {hook.target_label!r}, cooldown {hook.cooldown:g}s"
                            if hook.token else "off (no token_file)")]
    if config.notify is not None:
        lines.append(f"notify: {config.notify.url}")
    for action in config.actions:
        how = " ".join(action.command) if action.command else f"{action.http_method} {action.http_url}"
        lines.append(f"action on {action.code} ({', '.join(action.targets) or 'every target'}): {how}"
                     + (" [dry run]" if action.dry_run else ""))
    lines.append(f"reports: keep {config.reports_keep} per target")
    exposed = exposure_warning(config)
    if exposed:
        lines.append(f"warning: {exposed}")
    return lines
