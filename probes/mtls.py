"""The MTLS registrar probe: the RMX's handshake with the Front End, then a SIP OPTIONS.

Entry points: :func:`run` (scheduler: every registrar of a target, SRV members too, within
``ctx.deadline``) and :func:`probe` (CLI and tests: explicit registrars and client spec). The
network half is :mod:`probes.mtls_conn`; outcomes and hints are :mod:`probes.mtls_outcome`;
result types :mod:`probes.mtls_result`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from probes import mtls_conn, mtls_srv
from probes.model import ErrorKind, InputError, ProbeOutcome, ProbeStatus, failed
from probes.mtls_outcome import Reason, Stage
from probes.mtls_result import MtlsResult, RegistrarResult
from probes.mtls_tls import (
    ClientContext,
    ClientSpec,
    certificate_list,
    certificate_request_cas,
    chain_info,
    client_context,
    name_from_der,
)
from probes.target import ProbeContext, Registrar, SecretFile, Settings, Target

__all__ = ["ClientSpec", "MtlsResult", "RegistrarResult", "probe", "run", "spec_for_target"]

log = logging.getLogger(__name__)
NAME = "mtls"


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    sni: str | None
    label: str


def spec_for_target(target: Target, registrar: Registrar, keylog: Any = None) -> ClientSpec:
    """The client spec of a configured target (its certificate source, trust anchors, TLS range)."""
    src = target.certificate
    common: dict[str, Any] = {"ca_bundle": target.ca_bundle, "tls_min": registrar.tls_min,
                              "tls_max": registrar.tls_max, "keylog": keylog}
    if src is None or src.kind == "fetch":
        return ClientSpec(**common)
    if src.kind == "pfx":
        return ClientSpec(pfx=src.path, password=src.password, **common)
    if src.kind == "dir7x" and src.path is not None:
        password_file = src.path / "certPassword.txt"
        password = src.password or (SecretFile(password_file) if password_file.exists() else None)
        return ClientSpec(cert=src.path / "cert.pem", key=src.path / "pkey.pem", chain=src.path / "rootCA.pem",
                          password=password, **common)
    return ClientSpec(cert=src.path, key=src.key, chain=src.chain, password=src.password, **common)


def _issuer_check(client: ClientContext, ca_ders: list[bytes] | None) -> tuple[str | None, bool | None]:
    """(RMX issuer RFC 4514, whether the CA list names it); None where it cannot be judged."""
    if not client.chain:
        return None, None
    issuer = client.chain[0].issuer
    if not ca_ders:
        return issuer.rfc4514_string(), None  # no list, or an empty one ("any CA", RFC 5246 §7.4.4)
    wanted = issuer.public_bytes()
    return issuer.rfc4514_string(), any(der == wanted for der in ca_ders)


def _result(endpoint: _Endpoint, attempt: mtls_conn.Attempt, client: ClientContext,
            cache: dict[Any, Any]) -> RegistrarResult:
    trace = attempt.trace
    server_ders: list[bytes] = []
    ca_ders: list[bytes] | None = None
    try:
        if trace.server_certificate is not None:
            server_ders = certificate_list(trace.server_certificate, trace.tls13)
        if trace.certificate_request is not None:
            ca_ders = certificate_request_cas(trace.certificate_request, trace.tls13)
    except ValueError as exc:
        log.debug("malformed handshake message from %s: %s", endpoint.label, exc)
    ca_names = None
    if ca_ders is not None:
        names = []
        for der in ca_ders:
            try:
                names.append(name_from_der(der).rfc4514_string())
            except (ValueError, IndexError):
                names.append("(undecodable name)")
        ca_names = tuple(names)
    issuer, listed = _issuer_check(client, ca_ders)
    alert, direction = None, None
    if trace.alert_received is not None:
        alert, direction = trace.alert_received, "from_fe"
    elif trace.alert_sent is not None and attempt.reason is not Reason.OK:
        alert, direction = trace.alert_sent, "from_rmx"
    requested: bool | None = None
    if trace.handshake_done or trace.client_cert_sent or trace.certificate_request is not None:
        requested = trace.certificate_request is not None
    response = attempt.response
    return RegistrarResult(
        registrar=endpoint.label, address=attempt.address, sni=endpoint.sni, stage=attempt.stage,
        reason=attempt.reason, phases=tuple(attempt.phases.items()), tls_version=attempt.tls_version,
        cipher=attempt.cipher, alert=alert, alert_direction=direction,
        after_handshake=attempt.after_handshake and alert is not None, verify_code=attempt.verify_code,
        verify_message=attempt.verify_message, ssl_reason=attempt.ssl_reason, errno=attempt.errno,
        client_cert_requested=requested, client_cert_sent=trace.client_cert_sent,
        client_cert_empty=trace.client_cert_empty, ca_names=ca_names, rmx_issuer=issuer,
        rmx_issuer_listed=listed, server_chain=chain_info(server_ders, cache),
        sip_status=response.status if response else None, sip_reason_phrase=response.reason if response else None,
        sip_server=response.server if response else None,
        ms_diagnostics=response.diagnostics if response else (), ladder=tuple(trace.steps), detail=attempt.detail)


def _srv_failure(domain: str, port: int, exc: mtls_srv.SrvLookupError) -> RegistrarResult:
    return RegistrarResult(
        registrar=f"{mtls_srv.srv_name(domain)}:{port}", address=None, sni=None, stage=Stage.RESOLVE,
        reason=Reason.DNS_TIMEOUT if exc.timeout else Reason.DNS_FAILURE, phases=(), tls_version=None,
        cipher=None, alert=None, alert_direction=None, after_handshake=False, verify_code=None,
        verify_message=None, ssl_reason=None, errno=None, client_cert_requested=None, client_cert_sent=False,
        client_cert_empty=False, ca_names=None, rmx_issuer=None, rmx_issuer_listed=None, server_chain=(),
        sip_status=None, sip_reason_phrase=None, sip_server=None, ms_diagnostics=(), ladder=(), detail=str(exc))


def _from_host(target_fqdn: str | None, client: ClientContext) -> str:
    if target_fqdn:
        return target_fqdn
    if client.chain:
        cns = client.chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if cns:
            return str(cns[0].value)
    return "rmxdiag.invalid"


def probe(registrars: Sequence[Registrar], spec: ClientSpec, *, deadline: float,
          cache: dict[Any, Any] | None = None, from_host: str | None = None,
          client_specs: Sequence[ClientSpec] | None = None) -> ProbeOutcome:
    """Probe every registrar (SRV domains expanded) before the absolute ``deadline``.

    Raises :class:`InputError` for unusable client files (the CLI exits 3); network trouble is
    never an exception but a classified outcome. ``client_specs`` (one per registrar) overrides
    ``spec`` where registrars need different TLS ranges.
    """
    started = time.monotonic()
    cache = cache if cache is not None else {}
    results: list[RegistrarResult] = []
    chains: tuple[x509.Certificate, ...] = ()
    for index, registrar in enumerate(registrars):
        this_spec = client_specs[index] if client_specs else spec
        client = client_context(this_spec, cache)
        mtls_conn.install_callback(client.context)
        chains = chains or client.chain
        endpoints: list[_Endpoint] = []
        if registrar.srv_domain:
            try:
                members = mtls_srv.srv_members(registrar.srv_domain, deadline)
            except mtls_srv.SrvLookupError as exc:
                results.append(_srv_failure(registrar.srv_domain, registrar.port, exc))
                continue
            endpoints = [_Endpoint(h, p, registrar.sni or registrar.srv_domain, f"{h}:{p}") for h, p in members]
        elif registrar.host:
            endpoints = [_Endpoint(registrar.host, registrar.port, registrar.sni, f"{registrar.host}:{registrar.port}")]
        for position, endpoint in enumerate(endpoints):
            # Share the time left so one tarpit member cannot starve the members after it.
            left = len(endpoints) - position
            share = deadline if left <= 1 else time.monotonic() + (deadline - time.monotonic()) / left
            attempt = mtls_conn.probe_once(endpoint.host, endpoint.port, endpoint.sni, client, share,
                                           sip_options=registrar.sip_options,
                                           from_host=_from_host(from_host, client))
            results.append(_result(endpoint, attempt, client, cache))
    client_infos = chain_info([c.public_bytes(Encoding.DER) for c in chains], cache)
    result = MtlsResult(tuple(results), client_infos)
    findings = tuple(f for r in results for f in r.findings())
    failing = result.primary if result.primary is not None and not result.primary.ok else None
    return ProbeOutcome(NAME, ProbeStatus.OK, time.monotonic() - started, findings, result=result,
                        failure=(str(failing.stage), str(failing.reason)) if failing else None)


def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """Scheduler entry point: probe every registrar of ``target`` within ``ctx.deadline``; never raises."""
    started = time.monotonic()
    if not target.registrars:
        return ProbeOutcome(NAME, ProbeStatus.SKIPPED, 0.0)
    try:
        specs = [spec_for_target(target, r) for r in target.registrars]
        return probe(target.registrars, specs[0], deadline=ctx.deadline, cache=ctx.cache,
                     from_host=target.fqdn, client_specs=specs)
    except InputError as exc:
        return failed(NAME, exc.kind, str(exc), time.monotonic() - started)
    except Exception as exc:  # the scheduler must never die of a probe bug
        log.debug("mtls probe bug for %s", target.name, exc_info=True)
        return failed(NAME, ErrorKind.PROBE_BUG, f"{type(exc).__name__} in the mtls probe",
                      time.monotonic() - started)
