"""Load and validate the rmxdiag YAML configuration into :class:`daemon.config.model.Config`.

The schema is closed: an unknown key, a wrong type, a value out of range, a missing or unsafe
file all raise :class:`ConfigError` with one line ``file:line: key.path: what is wrong``.
Relative paths resolve against the directory of the config file. Secrets are only ever file
paths (``password_file``, ``token_file``, ``key``...) or ``{credential: NAME}`` for
``$CREDENTIALS_DIRECTORY/NAME`` (systemd ``LoadCredential=``); their contents are not read here.
The documented example is ``config/rmxdiag.example.yaml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

import probes
from daemon.config.files import ConfigError, readable_file
from daemon.config.model import ActionConfig, BasicAuth, Config, NotifyConfig, ServerConfig, WebhookConfig
from daemon.config.yaml_lines import LABEL_SAFE, Mapping, Node, Reader
from daemon.diagnosis.catalogue import CATALOGUE, Firmware
from probes.target import (
    TLS_VERSIONS,
    AlarmSources,
    CaptureSources,
    CertificateSource,
    Registrar,
    SecretFile,
    Settings,
    Target,
    XmlApi,
    tls_version,
)

__all__ = ["DEFAULT_PATH", "ConfigError", "load_config"]

DEFAULT_PATH = Path("/etc/rmxdiag/rmxdiag.yaml")

# Applied with fullmatch() and ending in \Z: `$` also matches before a trailing newline.
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*\Z")
_INTERFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\Z")
_MAX_WARNING_DAYS = 3650
_HOUR = 3600.0
_DAY_SECONDS = 86400.0


def load_config(path: Path | str) -> Config:
    """Read, validate and type the configuration file at ``path`` (ConfigError on any problem)."""
    source = Path(path)
    reader = Reader(source)
    try:
        top = reader.root().mapping()
        top.only("settings", "targets", "server", "webhook", "notify", "actions", "reports", "schedule")
        settings = top.opt("settings", _settings, Settings())
        targets = _targets(top.required("targets"), settings)
        names = {t.name for t in targets}
        config = Config(
            source=source,
            settings=settings,
            targets=targets,
            server=top.opt("server", _server, ServerConfig()),
            webhook=top.opt("webhook", _webhook, WebhookConfig()),
            notify=top.opt("notify", _notify, None),
            actions=top.opt("actions", lambda n: _actions(n, names), ()),
            reports_keep=top.opt("reports", _reports, 50),
            schedule=top.opt("schedule", lambda n: n.boolean(), True),
        )
        top.finish()
    finally:
        reader.close()
    return config


# -- settings ------------------------------------------------------------------------------------
def _settings(node: Node) -> Settings:
    m = node.mapping()
    default = Settings()
    settings = Settings(
        listen=m.opt("listen", lambda n: n.host_port(), default.listen),
        interval=m.opt("interval", lambda n: n.number(0, _DAY_SECONDS), default.interval),
        concurrency=m.opt("concurrency", lambda n: n.integer(1, 1024), default.concurrency),
        deadline=m.opt("deadline", lambda n: n.number(0, _HOUR), default.deadline),
        state_dir=m.opt("state_dir", lambda n: n.directory(must_exist=False), default.state_dir),
        expiry_warning_days=m.opt("expiry_warning_days", lambda n: n.integer(1, _MAX_WARNING_DAYS),
                                  default.expiry_warning_days),
    )
    if settings.deadline > settings.interval:
        raise (m.get("deadline") or node).fail(f"the probe deadline ({settings.deadline:g}s) is longer than "
                                               f"the interval ({settings.interval:g}s)")
    m.finish()
    return settings


# -- targets -------------------------------------------------------------------------------------
def _targets(node: Node, settings: Settings) -> tuple[Target, ...]:
    targets: list[Target] = []
    seen: set[str] = set()
    for item in node.items(allow_empty=False):
        target = _target(item, settings)
        if target.name in seen:
            raise item.mapping().required("name").fail(f"duplicate target name {target.name!r}")
        seen.add(target.name)
        targets.append(target)
    return tuple(targets)


def _target(node: Node, settings: Settings) -> Target:
    m = node.mapping()
    interval_node, deadline_node = m.get("interval"), m.get("deadline")
    interval = interval_node.number(0, _DAY_SECONDS) if interval_node else settings.interval
    deadline = deadline_node.number(0, _HOUR) if deadline_node else settings.deadline
    if deadline > interval:
        # A run must end before the next one starts; blame the key this target sets.
        culprit = deadline_node or interval_node or node
        raise culprit.fail(f"the probe deadline ({deadline:g}s) is longer than the target's interval "
                           f"({interval:g}s)")
    target = Target(
        name=m.required("name").text(LABEL_SAFE, "a label-safe name (letters, digits, _ . -; at most 64)"),
        fqdn=m.opt("fqdn", lambda n: n.hostname(), None),
        signaling_ip=m.opt("signaling_ip", lambda n: n.ip(), None),
        firmware=m.opt("firmware", lambda n: n.choice(tuple(f.value for f in Firmware)), Firmware.V8.value),
        certificate=m.opt("certificate", _certificate, None),
        ca_bundle=m.opt("ca_bundle", lambda n: n.input_file(), None),
        registrars=m.opt("registrars", lambda n: tuple(_registrar(i) for i in n.items()), ()),
        alarms=m.opt("alarms", _alarms, AlarmSources()),
        capture=m.opt("capture", _capture, CaptureSources()),
        interval=interval,
        deadline=deadline,
        expiry_warning_days=m.opt("expiry_warning_days", lambda n: n.integer(1, _MAX_WARNING_DAYS),
                                  settings.expiry_warning_days),
        check_revocation=m.opt("check_revocation", lambda n: n.boolean(), False),
    )
    m.finish()
    cert = target.certificate
    if target.registrars and cert is not None and cert.kind == "pem" and cert.key is None:
        # The MTLS probe presents this certificate to the Front End: without its key it cannot.
        raise m.required("certificate").fail(
            "a 'key' is required when registrars are set (the MTLS probe presents this certificate)")
    if not probes.applicable(target):  # each probe says which targets give it work
        raise node.fail("nothing to probe: give at least one of " + ", ".join(
            {"mtls": "registrars"}.get(name, name) for name in probes.PROBES))
    return target


_CERT_KINDS = ("pfx", "cert", "dir7x", "fetch")


def _certificate(node: Node) -> CertificateSource:
    m = node.mapping()
    kinds = [k for k in _CERT_KINDS if m.has(k)]
    if len(kinds) != 1:
        raise node.fail("give exactly one of pfx (+ password_file), cert (+ key, chain), dir7x, fetch"
                        + (f"; got {', '.join(kinds)}" if kinds else ""))
    kind = kinds[0]
    if kind == "pfx":
        # A PFX exported without a password needs no password file (an empty one is refused).
        source = CertificateSource("pfx", path=m.required("pfx").secret_file(),
                                   password=m.opt("password_file", lambda n: SecretFile(n.secret_file()), None))
    elif kind == "cert":
        source = CertificateSource("pem", path=m.required("cert").input_file(),
                                   key=m.opt("key", lambda n: n.secret_file(), None),
                                   chain=m.opt("chain", lambda n: n.input_file(), None))
    elif kind == "dir7x":
        source = _dir7x(m.required("dir7x"))
    else:
        source = CertificateSource("fetch", fetch_address=m.required("fetch").host_port())
    m.finish()
    return source


def _dir7x(node: Node) -> CertificateSource:
    """A 7.x certificate directory: cert.pem, pkey.pem, rootCA.pem, certPassword.txt (optional)."""
    directory = node.directory()
    for name in ("cert.pem", "pkey.pem"):
        # Only what is not there is "missing": a FIFO, directory or symlink there is refused below, by name.
        if not os.path.lexists(directory / name):
            raise node.fail(f"{directory}: {name} is missing (a 7.x directory holds cert.pem, pkey.pem, "
                            "rootCA.pem and certPassword.txt)")
    password = directory / "certPassword.txt"
    chain = directory / "rootCA.pem"
    for given in (directory / "cert.pem", chain):
        if os.path.lexists(given):
            readable_file(given, node.fail)
    for secret in (directory / "pkey.pem", password):
        if os.path.lexists(secret):
            node.check_secret(secret)
    return CertificateSource("dir7x", path=directory, key=directory / "pkey.pem",
                             chain=chain if os.path.lexists(chain) else None,
                             password=SecretFile(password) if os.path.lexists(password) else None)


def _registrar(node: Node) -> Registrar:
    m = node.mapping()
    has_host, has_srv = m.has("host"), m.has("srv_domain")
    if has_host == has_srv:
        raise node.fail("give exactly one of host (pool FQDN or IP) and srv_domain (SIP domain for SRV)")
    default = Registrar()
    tls_min_node = m.get("tls_min")
    registrar = Registrar(
        host=m.opt("host", lambda n: n.hostname(), None),
        srv_domain=m.opt("srv_domain", lambda n: n.hostname(), None),
        port=m.opt("port", lambda n: n.integer(1, 65535), default.port),
        sni=m.opt("sni", lambda n: n.hostname(), None),
        tls_min=tls_min_node.parsed(tls_version) if tls_min_node else default.tls_min,
        tls_max=m.opt("tls_max", lambda n: n.parsed(tls_version), default.tls_max),
        sip_options=m.opt("sip_options", lambda n: n.boolean(), default.sip_options),
    )
    m.finish()
    if TLS_VERSIONS.index(registrar.tls_min) > TLS_VERSIONS.index(registrar.tls_max):
        raise (tls_min_node or node).fail(f"tls_min {registrar.tls_min} is above tls_max {registrar.tls_max}")
    return registrar


def _alarms(node: Node) -> AlarmSources:
    m = node.mapping()
    sources = AlarmSources(
        report_files=m.opt("report_files", lambda n: tuple(i.input_file() for i in n.items()), ()),
        snmptrapd_log=m.opt("snmptrapd_log", lambda n: n.input_file(), None),
        syslog_file=m.opt("syslog_file", lambda n: n.input_file(), None),
        xml_api=m.opt("xml_api", _xml_api, None),
    )
    m.finish()
    return sources


def _xml_api(node: Node) -> XmlApi:
    m = node.mapping()
    api = XmlApi(
        url=m.required("url").text(_URL, "an http:// or https:// URL"),
        user=SecretFile(m.required("user_file").secret_file()),
        password=SecretFile(m.required("password_file").secret_file()),
        ca_bundle=m.opt("ca_bundle", lambda n: n.input_file(), None),
        timeout=m.opt("timeout", lambda n: n.number(0, 300), 10.0),
    )
    m.finish()
    return api


def _capture(node: Node) -> CaptureSources:
    m = node.mapping()
    default = CaptureSources()
    keylog_node = m.get("keylog")
    capture = CaptureSources(
        files=m.opt("files", lambda n: tuple(i.input_file() for i in n.items()), ()),
        directory=m.opt("directory", lambda n: n.directory(), None),
        interface=m.opt("interface", lambda n: n.text(_INTERFACE, "a network interface name"), None),
        duration=m.opt("duration", lambda n: n.number(0, 600), default.duration),
        port=m.opt("port", lambda n: n.integer(1, 65535), default.port),
        max_packets=m.opt("max_packets", lambda n: n.integer(1, 10_000_000), default.max_packets),
        max_bytes=m.opt("max_bytes", lambda n: n.integer(1024, 10 * 1024**3), default.max_bytes),
        # A key log decrypts the SIP inside TLS: treat it like key material.
        keylog=keylog_node.secret_file() if keylog_node else None,
    )
    m.finish()
    return capture


# -- daemon sections -----------------------------------------------------------------------------
def _server(node: Node) -> ServerConfig:
    m = node.mapping()
    default = ServerConfig()
    cert_node, key_node = m.get("tls_cert_file"), m.get("tls_key_file")
    if (cert_node is None) != (key_node is None):
        raise node.fail("tls_cert_file and tls_key_file go together (give both or neither)")
    users: list[BasicAuth] = []
    for item in m.listed("basic_auth"):
        entry = item.mapping()
        username_node = entry.required("username")
        username = username_node.text()
        if ":" in username:
            raise username_node.fail("a Basic auth user name cannot contain ':'")
        if any(u.username == username for u in users):
            raise username_node.fail(f"duplicate user {username!r}")
        users.append(BasicAuth(username, SecretFile(entry.required("password_file").secret_file())))
        entry.finish()
    server = ServerConfig(
        tls_cert=cert_node.input_file() if cert_node else None,
        tls_key=key_node.secret_file() if key_node else None,
        basic_auth=tuple(users),
        max_connections=m.opt("max_connections", lambda n: n.integer(1, 100_000), default.max_connections),
        header_timeout=m.opt("header_timeout", lambda n: n.number(0, 300), default.header_timeout),
        body_timeout=m.opt("body_timeout", lambda n: n.number(0, 300), default.body_timeout),
        write_timeout=m.opt("write_timeout", lambda n: n.number(0, 300), default.write_timeout),
        probe_reuse=m.opt("probe_reuse", lambda n: n.number(0, 300, allow_zero=True), default.probe_reuse),
        max_body_bytes=m.opt("max_body_bytes", lambda n: n.integer(1024, 64 * 1024**2), default.max_body_bytes),
        enable_lifecycle=m.opt("enable_lifecycle", lambda n: n.boolean(), default.enable_lifecycle),
        external_url=m.opt("external_url", _external_url, None),
        allowed_hosts=m.opt("allowed_hosts", lambda n: tuple(i.hostname().lower().rstrip(".") for i in n.items()), ()),
    )
    m.finish()
    return server


def _external_url(node: Node) -> str:
    url = node.text(_URL, "an http:// or https:// URL")
    if "?" in url or "#" in url:
        raise node.fail(f"{url!r} must not carry a query or fragment (it is the base of the page URLs)")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # It is shown in notifications and pages: never a password.
        raise node.fail("must not carry user:password@ (it is shown in notifications and on the pages)")
    return url.rstrip("/")


def _webhook(node: Node) -> WebhookConfig:
    m = node.mapping()
    default = WebhookConfig()
    webhook = WebhookConfig(
        token=m.opt("token_file", lambda n: SecretFile(n.secret_file()), None),
        target_label=m.opt("target_label", lambda n: n.text(re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z"),
                                                              "a Prometheus label name"), default.target_label),
        cooldown=m.opt("cooldown", lambda n: n.number(0, _DAY_SECONDS, allow_zero=True), default.cooldown),
        live_capture=m.opt("live_capture", lambda n: n.boolean(), default.live_capture),
    )
    m.finish()
    return webhook


def _notify(node: Node) -> NotifyConfig:
    m = node.mapping()
    notify = NotifyConfig(
        url=m.required("url").text(_URL, "an http:// or https:// URL"),
        token=m.opt("token_file", lambda n: SecretFile(n.secret_file()), None),
        timeout=m.opt("timeout", lambda n: n.number(0, 300), 10.0),
    )
    m.finish()
    return notify


def _actions(node: Node, target_names: set[str]) -> tuple[ActionConfig, ...]:
    return tuple(_action(item, target_names) for item in node.items())


def _action(node: Node, target_names: set[str]) -> ActionConfig:
    m = node.mapping()
    code_node = m.required("code")
    code = code_node.text()
    if code not in CATALOGUE:
        raise code_node.fail(f"{code!r} is not a hint code (see `rmxdiag hints`)")
    targets: list[str] = []
    for item in m.listed("targets"):
        name = item.text()
        if name not in target_names:
            raise item.fail(f"{name!r} is not a configured target")
        targets.append(name)
    has_command, has_http = m.has("command"), m.has("http")
    if has_command == has_http:
        raise node.fail("give exactly one of command (an argv list) and http ({url, method})")
    command: tuple[str, ...] = ()
    url, method = None, "POST"
    if has_command:
        command_node = m.required("command")
        if not isinstance(command_node.node, yaml.SequenceNode):
            raise command_node.fail("must be a list of arguments (argv), never a shell string: "
                                    "e.g. [/usr/local/bin/fix-rmx, --target, rmx-hq]")
        command = tuple(i.text() for i in command_node.items(allow_empty=False))
    else:
        http = m.required("http").mapping()
        url = http.required("url").text(_URL, "an http:// or https:// URL")
        method = http.opt("method", lambda n: n.choice(("GET", "POST", "PUT")), "POST")
        http.finish()
    action = ActionConfig(code=code, targets=tuple(targets), command=command, http_url=url,
                          http_method=method, timeout=m.opt("timeout", lambda n: n.number(0, _HOUR), 30.0),
                          dry_run=m.opt("dry_run", lambda n: n.boolean(), True))
    m.finish()
    return action


def _reports(node: Node) -> int:
    m: Mapping = node.mapping()
    keep = m.opt("keep", lambda n: n.integer(1, 100_000), 50)
    m.finish()
    return keep
