"""The certificate probe: load the RMX certificate, judge it, and check what needs the network.

I/O lives here (files, the RMX's own TLS listener, DNS, CDP/OCSP fetches); the judgement is the
pure :func:`probes.certificate.checks.analyse`. :func:`inspect` is the direct entry point (CLI, tests);
:func:`run` is the scheduler's (the engine wraps its errors) and caches parsed files across runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from probes.certificate.chain import thumbprint
from probes.certificate.checks import UNCHECKED_NAME, Policy, Prepared, describe, findings_at, prepare
from probes.certificate.load import Material, load_certificate, load_chain, load_key, quiet_parser_warnings
from probes.cpu import cpu_slot
from probes.fileio import read_capped, read_secret
from probes.memo import file_signature, once
from probes.model import MAX_CHAIN_POSITION, Finding, InputError, Metric, ProbeOutcome, ProbeStatus, Sample, Severity
from probes.target import CertificateSource, ProbeContext, Settings, Target

PROBE = "certificate"


@dataclass(frozen=True)
class CertOptions:
    """How to judge the certificate (the CLI flags / target fields)."""

    fqdn: str | None = None
    signaling_ip: str | None = None
    ca_bundle: Path | None = None
    firmware: str = "8.x"
    expiry_warning_days: int = 30
    check_revocation: bool = False
    allow_san: bool = False


@dataclass(frozen=True)
class CertificateResult:
    """What was inspected: the leaf summary, the supplied CA certificates and informational notes.

    ``summary`` is None when there was no certificate to describe (a request, a PFX that did not
    open). ``key`` is ``matches``, ``mismatch`` or ``not supplied``. ``not_after`` holds the unix
    notAfter of the leaf (position 0), then of each supplied CA certificate (nearest first).
    """

    file: str
    form: str
    summary: dict[str, Any] | None
    chain: tuple[dict[str, Any], ...] = ()
    key: str = "not supplied"
    notes: tuple[str, ...] = ()
    extra_leaves: tuple[str, ...] = field(default=())
    not_after: tuple[float, ...] = ()

    def samples(self) -> Iterator[Sample]:
        """The notAfter of the RMX chain as the certificate probe loaded it (role ``client``)."""
        for position, stamp in enumerate(self.not_after[:MAX_CHAIN_POSITION + 1]):
            yield Sample(Metric.CERT_NOT_AFTER, ("client", str(position)), stamp)

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"file": self.file, "form": self.form, "certificate": self.summary,
                "chain": list(self.chain), "private_key": self.key, "notes": list(self.notes),
                "other_end_entity_certificates": list(self.extra_leaves)}

    def text_lines(self) -> list[str]:
        """The certificate summary an admin reads after the problems."""
        lines = [f"file: {self.file} ({self.form})"]
        s = self.summary
        if s is not None:
            lines += [f"subject:   {s['subject']}", f"issuer:    {s['issuer']}", f"serial:    {s['serial']}",
                      f"SHA-1:     {s.get('sha1', '?')}",
                      f"valid:     {s['not_before']} -> {s['not_after']}",
                      f"SAN:       {', '.join(s['sans']) or 'none'}",
                      f"EKU:       {', '.join(s['ekus']) or 'none (extension absent)'}",
                      f"signature: {s['signature_algorithm']}",
                      f"key:       {s['key_type']}" + (f" {s['key_bits']} bits" if s['key_bits'] else "")
                      + f"; private key {self.key}",
                      f"CDP:       {', '.join(s['cdp_urls']) or 'none'}",
                      f"AIA:       {', '.join(s['aia_urls'] + s['ocsp_urls']) or 'none'}"]
        for entry in self.chain:
            lines.append(f"CA cert:   {entry['subject']} (expires {entry['not_after']}; "
                         f"SHA-1 {entry.get('sha1', '?')})")
        lines += [f"other end-entity certificate: {e}" for e in self.extra_leaves]
        lines += [f"note: {n}" for n in self.notes]
        return lines


def load_source(source: CertificateSource, deadline: float, cache: dict[Any, Any] | None = None) -> Material:
    """The material of a configured source (parsed once per version of its files, see :mod:`probes.memo`)."""
    if source.kind == "fetch":
        if not source.fetch_address:
            raise InputError("certificate: kind 'fetch' needs fetch_address (host:port)")
        from probes.certificate.net import fetch_presented

        return fetch_presented(source.fetch_address, deadline)
    if source.path is None:
        raise InputError(f"certificate: kind '{source.kind}' needs a path")
    pw_path = source.password.path if source.password else None
    files = [source.path, source.key, source.chain, pw_path]
    if source.kind == "dir7x":
        files += [source.path / n for n in ("cert.pem", "pkey.pem", "rootCA.pem", "certPassword.txt")]
    return once(cache, ("certificate-material", source), file_signature(*files), lambda: _load_files(source, pw_path))


def _load_files(source: CertificateSource, pw_path: Path | None) -> Material:
    assert source.path is not None  # noqa: S101 -- checked by the caller
    password = read_secret(pw_path) if pw_path is not None else None
    if source.kind == "dir7x" and not source.path.is_dir():
        raise InputError(f"{source.path}: kind 'dir7x' needs a directory")
    material = load_certificate(source.path, password)
    if material.leaf is None:
        return material
    chain = list(material.chain)
    if source.chain is not None:
        chain += load_chain(source.chain)
    key = material.key
    if source.key is not None:
        key = load_key(read_capped(source.key, "private key"), source.key, password)
    return Material(material.file, material.form, leaf=material.leaf, chain=tuple(chain), key=key,
                    chain_supplied=material.chain_supplied or source.chain is not None,
                    extra_leaves=material.extra_leaves, pfx_protection=material.pfx_protection)


def _anchors(path: Path | None, cache: dict[Any, Any] | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    return once(cache, ("certificate-anchors", path), file_signature(path), lambda: tuple(load_chain(path)))


@dataclass(frozen=True)
class _Judged:
    """What judging one material under one policy yields that the clock and the network do not change.

    Holds the material and anchors it was computed from, so their ids in the cache signature
    cannot be reused by other objects while this entry lives.
    """

    material: Material
    anchors: tuple[Any, ...]
    prepared: Prepared
    summary: dict[str, Any] | None
    chain: tuple[dict[str, Any], ...]
    extra_leaves: tuple[str, ...]
    not_after: tuple[float, ...]


def _judged(material: Material, policy: Policy, now: datetime) -> _Judged:
    leaf = material.leaf
    return _Judged(
        material, policy.anchors, prepare(material, policy, now), describe(leaf) if leaf is not None else None,
        tuple({"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
               "not_after": describe(c)["not_after"], "sha1": thumbprint(c)} for c in material.chain),
        tuple(c.subject.rfc4514_string() for c in material.extra_leaves),
        tuple(c.not_valid_after_utc.timestamp() for c in (leaf, *material.chain)) if leaf else ())


def judge(material: Material, options: CertOptions, now: datetime, deadline: float,
          cache: dict[Any, Any] | None = None, *, slot: Any = None) -> tuple[list[Finding], CertificateResult]:
    """Findings (pure checks + DNS + revocation when asked) and the result for one material.

    With a ``cache`` and the ``slot`` of the material's source, what depends only on the
    material and the options (parsing, names, signatures, the chain while every certificate is
    within its validity) is computed once; what depends on the clock (expiry) or on the world
    (DNS, revocation) is computed on every call.
    """
    anchors = _anchors(options.ca_bundle, cache)
    policy = Policy(fqdn=options.fqdn, firmware=options.firmware, expiry_warning_days=options.expiry_warning_days,
                    anchors=anchors, bundle_given=options.ca_bundle is not None, allow_san=options.allow_san)
    with cpu_slot:
        judged = once(cache if slot is not None else None, ("certificate-judged", slot),
                      (id(material), id(anchors), options), lambda: _judged(material, policy, now))
        findings = findings_at(judged.prepared, material, policy, now)
    leaf = material.leaf
    if leaf is not None and not options.fqdn:
        findings.append(Finding("CERT_NOTE_NO_FQDN", Severity.INFO,
                                "the name was not checked against the RMX signaling FQDN: give --fqdn (fqdn in the "
                                "configuration)",
                                {"file": material.file, **UNCHECKED_NAME}))
    # The network checks (and their imports) only when asked for: start-up time matters to checks.
    if leaf is not None and options.fqdn and options.signaling_ip:
        from probes.certificate.net import dns_findings

        findings += dns_findings(options.fqdn, options.signaling_ip, deadline)
    if leaf is not None and options.check_revocation:
        from probes.certificate.net import revocation_findings

        findings += revocation_findings(leaf, deadline)
    key_state = "not supplied"
    if material.key is not None:
        key_state = "DOES NOT MATCH" if any(f.code == "CERT_KEY_MISMATCH" for f in findings) else "matches"
    result = CertificateResult(
        file=material.file, form=material.form, summary=judged.summary, chain=judged.chain, key=key_state,
        notes=tuple(f.message for f in findings if f.severity is Severity.INFO and f.code != "CERT_SUMMARY"),
        extra_leaves=judged.extra_leaves, not_after=judged.not_after)
    return findings, result


def inspect(source: CertificateSource, options: CertOptions, now: datetime, deadline: float,
            cache: dict[Any, Any] | None = None) -> ProbeOutcome:
    """Direct entry point: the outcome for one certificate source; InputError for bad input."""
    started = time.monotonic()
    with quiet_parser_warnings():
        if source.kind == "fetch":
            material = load_source(source, deadline, cache)
        else:
            with cpu_slot:
                material = load_source(source, deadline, cache)
        # A fetched certificate is the world's answer of the moment: judged afresh every time.
        findings, result = judge(material, options, now, deadline, cache,
                                 slot=None if source.kind == "fetch" else source)
    return ProbeOutcome(PROBE, ProbeStatus.OK, time.monotonic() - started, tuple(findings), result=result)


def run(target: Target, settings: Settings, ctx: ProbeContext) -> ProbeOutcome:
    """Scheduler entry point (through the engine): the target's certificate, parsed files cached."""
    if target.certificate is None:
        raise InputError(f"target {target.name}: no certificate configured")
    options = CertOptions(fqdn=target.fqdn, signaling_ip=target.signaling_ip, ca_bundle=target.ca_bundle,
                          firmware=target.firmware, expiry_warning_days=target.expiry_warning_days,
                          check_revocation=target.check_revocation)
    return inspect(target.certificate, options, ctx.now, ctx.deadline, ctx.cache)
