"""The certificate workflow helpers behind `rmxdiag cert csr|extract|pfx|preflight`.

Each helper reuses the `rmxdiag cert` checks and report, so codes and wording are the same.
Refusals are reports with the hint that explains them (exit 2); unusable input is exit 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from daemon.commands._cert_options import options_from, source_from
from daemon.commands._common import emit, single_report
from daemon.diagnosis.catalogue import Firmware
from probes.certificate.checks import Policy
from probes.certificate.load import (
    LAYOUT_7X,
    Material,
    is_ca,
    load_certificate,
    load_chain,
    load_key,
    quiet_parser_warnings,
)
from probes.certificate.pkcs12 import protection
from probes.fileio import read_capped, read_secret, tracking_reads
from probes.fileout import check_output, write_output
from probes.model import Finding, InputError, NoSamples, ProbeOutcome, ProbeStatus, Severity

# What the RMX 8.x Certification Repository import says for each cause
# (its 'Invalid password.', 'Certificate expired.' ... messages).
IMPORT_ERRORS = {
    "PFX_BAD_PASSWORD": "Invalid password.",
    "CERT_EXPIRED": "Certificate expired.",
    "CERT_NOT_YET_VALID": "Certificate expired.",
    "CERT_CN_MISMATCH": "Certificate DNS name does not match RMX (service) DNS name.",
    "CERT_CHAIN_INCOMPLETE": "Chain is not trusted",
    "CERT_SELF_SIGNED": "Chain is not trusted",
    "PFX_ENCRYPTION_UNSUPPORTED": "Invalid password.",
}


def run_action(action: str, args: argparse.Namespace, path: Path) -> int:
    """Run one helper and return its exit code."""
    if args.output is not None and action not in ("extract", "pfx"):
        raise InputError(f"-o/--output does not apply to '{action}'")
    handler = {"csr": lint_csr, "extract": extract, "pfx": assemble, "preflight": preflight}[action]
    # Every file the action opens is an input -o must never replace, those inside a 7.x directory too.
    with quiet_parser_warnings(), tracking_reads():
        return handler(args, path)


def _report(name: str, outcome: ProbeOutcome, args: argparse.Namespace, intro: tuple[str, ...] = ()) -> int:
    return emit(single_report(name, [outcome], Firmware(args.firmware)), args.format, verbose=args.verbose,
                intro=intro)


def _policy(args: argparse.Namespace) -> Policy:
    anchors = tuple(load_chain(args.ca_bundle)) if args.ca_bundle else ()
    return Policy(fqdn=args.fqdn, firmware=args.firmware, expiry_warning_days=args.expiry_warning_days,
                  anchors=anchors, bundle_given=args.ca_bundle is not None, allow_san=args.allow_san)


def lint_csr(args: argparse.Namespace, path: Path) -> int:
    """`cert csr FILE`: the request judged with the certificate rules before it goes to the CA."""
    from probes.certificate.request import lint_request, load_request

    started = time.monotonic()
    findings, result = lint_request(load_request(path), _policy(args), str(path))
    outcome = ProbeOutcome("csr", ProbeStatus.OK, time.monotonic() - started, tuple(findings), result=result)
    return _report(str(path), outcome, args)


@dataclass(frozen=True)
class ExtractResult(NoSamples):
    """The leaf to paste and the role of every certificate the CA answer held."""

    file: str
    leaf_pem: str
    roles: tuple[tuple[str, str], ...]  # (role, subject)

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"file": self.file, "leaf_pem": self.leaf_pem,
                "certificates": [{"role": r, "subject": s} for r, s in self.roles]}

    def text_lines(self) -> list[str]:
        """Which certificate is which."""
        return [f"{role}: {subject}" for role, subject in self.roles]


def _refuse(name: str, findings: list[Finding], args: argparse.Namespace, probe: str) -> int:
    """A refusal: the report of the blocking findings, verdict first. On stdout when the result was to
    go to a file (-o); on stderr when stdout is the data channel (the PEM a script redirects)."""
    outcome = ProbeOutcome(probe, ProbeStatus.OK, 0.0, tuple(findings))
    if args.format == "json":
        return _report(name, outcome, args)
    from daemon.report import render_text

    report = single_report(name, [outcome], Firmware(args.firmware))
    stream = sys.stdout if getattr(args, "output", None) is not None else sys.stderr
    stream.write(render_text(report, stream, verbose=args.verbose > 0))
    return report.exit_code


def _inputs(args: argparse.Namespace, path: Path) -> tuple[Path | None, ...]:
    """Every file an action will read: ``-o`` must be none of them (--force would destroy the input).

    Known before any work is done; the files actually opened are checked again when writing.
    """
    names = ("password_file", "key_password_file", "key", "chain", "ca_bundle", "fe_trust")
    inside = tuple(path / name for name in LAYOUT_7X) if path.is_dir() else ()
    return (path, *inside, *(getattr(args, name, None) for name in names))


def _material(args: argparse.Namespace, path: Path) -> Material:
    password = read_secret(args.password_file) if args.password_file else None
    return load_certificate(path, password)


def extract(args: argparse.Namespace, path: Path) -> int:
    """`cert extract FILE`: print the leaf as Base-64 PEM; say which certificates are CAs."""
    from probes.certificate.chain import is_self_signed
    from probes.certificate.checks import analyse

    if args.output is not None:
        check_output(args.output, args.force, _inputs(args, path))  # before any work: nothing touched
    material = _material(args, path)
    # A CA certificate is never "the RMX's" to paste into Send Certificate (rmxdiag cert says CERT_IS_CA).
    if material.bad_password or material.request is not None or (material.leaf is not None and is_ca(material.leaf)):
        return _refuse(str(path), analyse(material, Policy(), datetime.now(UTC)), args, "extract")
    assert material.leaf is not None  # noqa: S101 -- load_certificate returns a leaf otherwise
    if material.extra_leaves and material.key is None:
        leaves = [c.subject.rfc4514_string() for c in (material.leaf, *material.extra_leaves)]
        names = "; ".join(leaves[:3]) + (f"; and {len(leaves) - 3} more" if len(leaves) > 3 else "")
        raise InputError(f"{path}: holds several end-entity certificates ({names}): give --key to pick yours")
    pem = material.leaf.public_bytes(serialization.Encoding.PEM).decode()
    roles = [("leaf", material.leaf.subject.rfc4514_string())]
    roles += [("CA (root)" if is_self_signed(c) else "CA (intermediate)", c.subject.rfc4514_string())
              for c in material.chain]
    result = ExtractResult(str(path), pem, tuple(roles))
    if args.output is not None:
        write_output(args.output, pem.encode(), args.force, _inputs(args, path))
    if args.format == "json":
        return _report(str(path), ProbeOutcome("extract", ProbeStatus.OK, 0.0, result=result), args)
    if args.output is None:
        sys.stdout.write(pem)
    for line in result.text_lines():
        sys.stderr.write(line + "\n")
    if args.output is not None:
        sys.stderr.write(f"wrote {args.output}: paste its content into Send Certificate (Base-64)\n")
    return 0


@dataclass(frozen=True)
class PfxResult(NoSamples):
    """What was written: the file and the order of its certificates."""

    output: str
    order: tuple[str, ...]
    summary: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"output": self.output, "order": list(self.order), "reopened_with_same_password": True}

    def text_lines(self) -> list[str]:
        """The written file and its contents."""
        return [f"wrote {self.output} (mode 0600); re-opened with the same password: OK",
                *(f"  {i}. {s}" for i, s in enumerate(self.order, 1)), *self.summary]


def assemble(args: argparse.Namespace, path: Path) -> int:
    """`cert pfx CERT --key KEY ... -o OUT`: check, build, re-open and write the PFX."""
    from probes.certificate.checks import analyse
    from probes.certificate.pfx import blocking_problems, build
    from probes.certificate.probe import judge

    if args.output is None or args.password_file is None:
        raise InputError("pfx: needs -o OUT and --password-file F (the PFX password)")
    check_output(args.output, args.force, _inputs(args, path))  # before any work: nothing touched
    password = read_secret(args.password_file)
    try:
        password.decode("utf-8")
    except UnicodeDecodeError:
        # PKCS#12 stores the password as Unicode: bytes that are not text cannot be what the RMX is given.
        raise InputError(f"{args.password_file}: the password is not UTF-8 text (an ANSI/Latin-1 file?); "
                         "save the file as UTF-8 or as Notepad's \"Unicode\"") from None
    key_password = read_secret(args.key_password_file) if args.key_password_file else password
    material = load_certificate(path, key_password)
    now = datetime.now(UTC)
    if material.bad_password or material.request is not None or material.leaf is None:
        return _refuse(str(path), analyse(material, Policy(), now), args, "pfx")
    key = material.key
    if args.key is not None:
        key = load_key(read_capped(args.key, "private key"), args.key, key_password)
    if key is None:
        raise InputError("pfx: give --key (the private key created with the request)")
    candidates = list(material.chain) + (load_chain(args.chain) if args.chain else [])
    candidates += load_chain(args.ca_bundle) if args.ca_bundle else []
    blocking, cas = blocking_problems(material.leaf, key, candidates, now)
    if blocking:
        return _refuse(str(path), blocking, args, "pfx")
    assembly = build(material.leaf, key, cas, password)
    write_output(args.output, assembly.data, args.force, _inputs(args, path))
    # Judged like any PFX, its protection included: the file written must pass the rule it was built by.
    reopened = Material(str(args.output), "pfx", leaf=assembly.leaf, chain=assembly.cas, key=key,
                        chain_supplied=True, pfx_protection=protection(assembly.data))
    findings, cert_result = judge(reopened, options_from(args), now, time.monotonic() + 10.0)
    order = tuple(f"{role}: {c.subject.rfc4514_string()}" for role, c in
                  [("leaf + key", assembly.leaf), *(("CA", c) for c in assembly.cas)])
    result = PfxResult(str(args.output), order, tuple(cert_result.text_lines()))
    outcome = ProbeOutcome("pfx", ProbeStatus.OK, 0.0, tuple(findings), result=result)
    return _report(str(args.output), outcome, args)


@dataclass(frozen=True)
class PreflightResult(NoSamples):
    """The RMX 8.x import verdict and the certificate summary behind it."""

    verdict: str  # accept | reject
    import_errors: tuple[str, ...]
    fix_first: tuple[str, ...]
    details: Any  # the CertificateResult

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"verdict": self.verdict, "import_errors": list(self.import_errors), "fix_first": list(self.fix_first),
                "certificate": self.details.to_json() if self.details else None}

    def text_lines(self) -> list[str]:
        """The verdict, then the summary."""
        head = ["RMX 8.x import: " + ("accepted" if self.verdict == "accept" else "REFUSED")]
        head += [f"  the import would say: {e}" for e in self.import_errors]
        head += [f"  fix first: {f}" for f in self.fix_first]
        return head + (self.details.text_lines() if self.details else [])


def preflight(args: argparse.Namespace, path: Path) -> int:
    """`cert preflight FILE.pfx`: the install-time rejections plus every `rmxdiag cert` check."""
    from probes.certificate.probe import inspect

    if not args.fqdn:
        raise InputError("preflight: needs --fqdn (the RMX compares the certificate with its service DNS name)")
    outcome = inspect(source_from(args, path), options_from(args), datetime.now(UTC), time.monotonic() + 30.0)
    problems = sorted((f for f in outcome.findings if f.severity is not Severity.INFO),
                      key=lambda f: (f.code not in IMPORT_ERRORS, -f.severity.rank, f.code))
    errors = tuple(dict.fromkeys(IMPORT_ERRORS[f.code] for f in problems if f.code in IMPORT_ERRORS))
    blocking = [f for f in problems if f.severity is Severity.CRITICAL]
    fix_first = tuple(f"[{f.code}] {f.message}" for f in problems)
    verdict = "reject" if errors or blocking else "accept"
    result = PreflightResult(verdict, errors, fix_first, outcome.result)
    wrapped = ProbeOutcome("preflight", outcome.status, outcome.duration_seconds, outcome.findings, result=result)
    line = ("PRE-FLIGHT: the RMX will accept this" if verdict == "accept" and not problems else
            "PRE-FLIGHT: the RMX will accept this, but see the warnings below" if verdict == "accept" else
            "PRE-FLIGHT: the RMX 8.x import would refuse this"
            + (f" ({' / '.join(repr(e) for e in errors)})" if errors else "")
            + "; fix first: " + ", ".join(dict.fromkeys(f.code for f in problems)))
    return _report(str(path), wrapped, args, (line,))
