"""The MTLS registrar probe: the RMX's handshake with the Front End, then a SIP OPTIONS.

Entry points: :func:`run` (scheduler: every registrar of a target, SRV members too, within
``ctx.deadline``) and :func:`probe` (CLI and tests: explicit registrars and client spec). The
network half is :mod:`probes.mtls.conn`; outcomes and hints are :mod:`probes.mtls.outcome`;
result types :mod:`probes.mtls.result`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from probes.cpu import cpu_slot
from probes.model import ErrorKind, InputError, ProbeError, ProbeOutcome, ProbeStatus
from probes.mtls import conn as mtls_conn
from probes.mtls import srv as mtls_srv
from probes.mtls.outcome import Reason, Stage, resolve_reason
from probes.mtls.result import MtlsResult, RegistrarResult
from probes.mtls.tls import (
    CertInfo,
    ClientContext,
    ClientSpec,
    ca_names,
    chain_info,
    client_context,
)
from probes.resolve import ResolveError
from probes.target import ProbeContext, Registrar, SecretFile, Settings, Target
from probes.tlswire import Sender, certificate_list, certificate_request_cas

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
        password = src.password or (SecretFile(password_file) if os.path.lexists(password_file) else None)
        return ClientSpec(cert=src.path / "cert.pem", key=src.path / "pkey.pem", chain=src.path / "rootCA.pem",
                          password=password, **common)
    return ClientSpec(cert=src.path, key=src.key, chain=src.chain, password=src.password, **common)


# Outcomes where an alert we sent is no verdict of ours but OpenSSL's answer to the Front End
# closing or resetting (measured: 50 decode_error on a FIN right after our certificate).
_NOT_OUR_VERDICT = frozenset({Reason.OK, Reason.CLOSED, Reason.RESET, Reason.CLOSED_AFTER_CLIENT_CERT,
                              Reason.RESET_AFTER_CLIENT_CERT})


def _issuer_check(client: ClientContext, ca_ders: list[bytes] | None) -> tuple[str | None, bool | None]:
    """(RMX issuer RFC 4514, whether the CA list names it); None where it cannot be judged."""
    if client.issuer_der is None:
        return None, None
    if not ca_ders:
        return client.issuer_text, None  # no list, or an empty one ("any CA", RFC 5246 §7.4.4)
    return client.issuer_text, client.issuer_der in ca_ders


def _result(endpoint: _Endpoint, attempt: mtls_conn.Attempt, client: ClientContext,
            cache: dict[Any, Any]) -> RegistrarResult:
    trace = attempt.trace
    server_chain: tuple[CertInfo, ...] = ()
    ca_ders: list[bytes] | None = None
    names: tuple[str, ...] | None = None
    if trace.server_certificate is not None:
        # The FE sends the same Certificate message every time: summarise it once per cache.
        key = ("mtls-certificate-msg", trace.server_certificate, trace.tls13)
        server_chain = cache.get(key) or ()
        if not server_chain:
            try:
                server_chain = chain_info(certificate_list(trace.server_certificate[4:], trace.tls13), cache)
                cache[key] = server_chain
            except ValueError as exc:
                log.debug("malformed Certificate from %s: %s", endpoint.label, exc)
    if trace.certificate_request is not None:
        key = ("mtls-certificate-request-msg", trace.certificate_request, trace.tls13)
        found = cache.get(key)
        if found is None:
            try:
                ders = certificate_request_cas(trace.certificate_request[4:], trace.tls13)
                found = cache[key] = (ders, ca_names(ders, cache))
            except ValueError as exc:
                log.debug("malformed CertificateRequest from %s: %s", endpoint.label, exc)
        if found is not None:
            ca_ders, names = found
    issuer, listed = _issuer_check(client, ca_ders)
    alert: int | None = None
    direction: Sender | None = None
    if trace.alert_received is not None:
        alert, direction = trace.alert_received, Sender.FE
    elif trace.alert_sent is not None and attempt.reason not in _NOT_OUR_VERDICT:
        alert, direction = trace.alert_sent, Sender.RMX
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
        client_cert_empty=trace.client_cert_empty, ca_names=names, rmx_issuer=issuer,
        rmx_issuer_listed=listed, server_chain=server_chain,
        sip_status=response.status if response else None, sip_reason_phrase=response.reason if response else None,
        sip_server=response.server if response else None,
        ms_diagnostics=response.diagnostics if response else (), ladder=tuple(trace.steps), detail=attempt.detail,
        rmx_issuer_der=client.issuer_der, ca_ders=tuple(ca_ders) if ca_ders is not None else None,
        fe_chain_checked=client.verifies,
        rmx_subject=client.chain_infos[0].subject if client.chain_infos else None)


def _srv_failure(domain: str, port: int, exc: ResolveError) -> RegistrarResult:
    return RegistrarResult(
        registrar=f"{mtls_srv.srv_name(domain)}:{port}", address=None, sni=None, stage=Stage.RESOLVE,
        reason=resolve_reason(exc), phases=(), tls_version=None,
        cipher=None, alert=None, alert_direction=None, after_handshake=False, verify_code=None,
        verify_message=None, ssl_reason=None, errno=None, client_cert_requested=None, client_cert_sent=False,
        client_cert_empty=False, ca_names=None, rmx_issuer=None, rmx_issuer_listed=None, server_chain=(),
        sip_status=None, sip_reason_phrase=None, sip_server=None, ms_diagnostics=(), ladder=(), detail=str(exc))


def _from_host(target_fqdn: str | None, client: ClientContext) -> str:
    if target_fqdn:
        return target_fqdn
    return client.cn or "rmxdiag.invalid"


def probe(registrars: Sequence[Registrar], spec: ClientSpec, *, deadline: float,
          cache: dict[Any, Any] | None = None, from_host: str | None = None,
          client_specs: Sequence[ClientSpec] | None = None,
          srv_nameserver: tuple[str, int] | None = None,
          nameserver: tuple[str, int] | None = None, budget: float | None = None) -> ProbeOutcome:
    """Probe every registrar (SRV domains expanded) before the absolute ``deadline``.

    Raises :class:`InputError` for unusable client files (the CLI exits 3); network trouble is
    never an exception but a classified outcome. ``client_specs`` (one per registrar) overrides
    ``spec`` where registrars need different TLS ranges; ``srv_nameserver`` (ip, port) answers
    the SRV lookups instead of the system resolvers; ``nameserver`` (ip, port) answers the
    A/AAAA lookups of registrar hosts (split DNS; tests with a silent or NXDOMAIN server).
    ``budget``: the deadline in seconds as configured, when ``deadline`` leaves less because the
    probe started late (a registrar is blamed for a timeout only when it had its time).
    """
    started = time.monotonic()
    cache = cache if cache is not None else {}
    planned: list[RegistrarResult | tuple[_Endpoint, ClientContext, bool]] = []
    client_infos: tuple[CertInfo, ...] = ()
    for index, registrar in enumerate(registrars):
        this_spec = client_specs[index] if client_specs else spec
        with cpu_slot:
            client = client_context(this_spec, cache)
        mtls_conn.install_callback(client.context)
        client_infos = client_infos or client.chain_infos
        if registrar.srv_domain:
            try:
                members = mtls_srv.srv_members(registrar.srv_domain, deadline, srv_nameserver)
            except ResolveError as exc:
                planned.append(_srv_failure(registrar.srv_domain, registrar.port, exc))
                continue
            # Verify each member by its own name (the pool FQDN its certificate carries) unless told.
            planned += [(_Endpoint(h, p, registrar.sni or h, f"{h}:{p}"), client, registrar.sip_options)
                        for h, p in members]
        elif registrar.host:
            label = f"{registrar.host}:{registrar.port}"
            planned.append((_Endpoint(registrar.host, registrar.port, registrar.sni, label), client,
                            registrar.sip_options))
        else:
            raise InputError(f"registrars[{index}]: neither host nor srv_domain is set")

    def one(item: RegistrarResult | tuple[_Endpoint, ClientContext, bool]) -> RegistrarResult:
        if isinstance(item, RegistrarResult):
            return item
        endpoint, client, sip_options = item
        attempt = mtls_conn.probe_once(endpoint.host, endpoint.port, endpoint.sni, client, deadline,
                                       sip_options=sip_options, from_host=_from_host(from_host, client),
                                       nameserver=nameserver, started=started, budget=budget)
        with cpu_slot:
            return _result(endpoint, attempt, client, cache)

    if sum(not isinstance(item, RegistrarResult) for item in planned) <= 1:
        results = [one(item) for item in planned]
    else:
        # Pool members in parallel, each with the whole deadline: one tarpit cannot starve the others.
        with ThreadPoolExecutor(max_workers=min(len(planned), 8), thread_name_prefix="rmxdiag-member") as pool:
            results = list(pool.map(one, planned))
    result = MtlsResult(tuple(results), client_infos)
    findings = tuple(f for r in results for f in r.findings())
    busy = [r.registrar for r in results if r.reason is Reason.OVERLOADED]
    if busy:
        # Load is never a diagnosis: the probe could not do its job (UNKNOWN, no hint for it).
        return ProbeOutcome(NAME, ProbeStatus.FAILED, time.monotonic() - started, findings, result=result,
                            error=ProbeError(ErrorKind.OVERLOADED,
                                             f"{', '.join(busy)}: not probed before the deadline because rmxdiag "
                                             "was too busy (no verdict on the registrar)"))
    failing = result.primary if result.primary is not None and not result.primary.ok else None
    return ProbeOutcome(NAME, ProbeStatus.OK, time.monotonic() - started, findings, result=result,
                        failure=(str(failing.stage), str(failing.reason)) if failing else None)


def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """Scheduler entry point (through the engine): every registrar of ``target`` within ``ctx.deadline``."""
    if not target.registrars:
        raise InputError(f"target {target.name}: no registrar configured")
    specs = [spec_for_target(target, r) for r in target.registrars]
    return probe(target.registrars, specs[0], deadline=ctx.deadline, cache=ctx.cache,
                 from_host=target.fqdn, client_specs=specs,
                 budget=target.judged_deadline or target.deadline)
