"""Diagnosis: pure rules from the findings of all probes of one target to root-cause hints.

No I/O, no clock, no globals: everything a rule needs is in its arguments. The steps:

1. gather every finding with its probe, and derive one fact no single probe can state: the RMX
   issuer (certificate probe) missing from the Front End's CertificateRequest CA list (mtls or
   capture probe);
2. run the correlation rules of :mod:`daemon.diagnosis.rules` in order: each root cause takes the
   findings it explains, so one cause gives one hint carrying the evidence of every probe;
3. give every remaining catalogue finding its own hint (one per code);
4. fold RMX alarms into the root cause that corroborates them, or, when the probes contradict a
   registration/certificate alarm, report ``ALARM_UNCORROBORATED`` (info) instead of a critical.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from daemon.diagnosis.catalogue import (
    CATALOGUE,
    FIX_ON,
    NO_CLIENT_CERT_STEPS,
    NO_CLIENT_CERT_TITLE,
    SYMPTOMS,
    Firmware,
    HintCode,
    hint_code,
    remediation,
)
from daemon.diagnosis.rules import (
    CERTIFICATE_ALARM,
    REGISTRATION_ALARM,
    RULES,
    UNCORROBORATED,
    Seen,
    certificate_alarm_claims,
    same_alert,
)
from daemon.report import Hint, evidence_facts, evidence_sentence, sort_hints
from probes.model import Facts, Finding, ProbeOutcome, ProbeStatus, Severity
from probes.tlswire import dn_to_rfc4514

_ALARMS = (REGISTRATION_ALARM, CERTIFICATE_ALARM)
# Probes whose problems corroborate a registration alarm, most direct first.
_WIRE_PROBES = ("mtls", "capture")
# Warnings that still mean the registration path is broken, and roots that say nothing about it
# (rmxdiag's own TLS policy refusing the FE is not what the RMX saw).
_REGISTRATION_WARNINGS = frozenset({"SIP_ERROR_RESPONSE", "CLIENT_CERT_NOT_REQUESTED"})
_NOT_A_REGISTRATION_FAILURE = frozenset({"TLS_LOCAL_POLICY"})


def evidence_line(probe: str, finding: Finding) -> str:
    """One evidence line with its key facts (JSON, ``-v``): which probe saw what, and key=value."""
    facts = evidence_facts(finding.evidence)
    return f"{probe}: {finding.message}" + (f" ({facts})" if facts else "")


@dataclass
class _Root:
    """A root cause being assembled: its code and every observation it explains."""

    code: HintCode
    seen: list[Seen] = field(default_factory=list)

    def severity(self) -> Severity:
        worst = max((s.finding.severity for s in self.seen), key=lambda v: v.rank, default=None)
        return worst or CATALOGUE[self.code].severity

    def probes(self) -> set[str]:
        return {s.probe for s in self.seen}


def diagnose(outcomes: Iterable[ProbeOutcome], firmware: Firmware = Firmware.V8) -> tuple[Hint, ...]:
    """Root-cause hints (most severe first) for the outcomes of all probes of one target."""
    ran = tuple(outcomes)
    seen = [Seen(o.probe, f, o.failure) for o in ran for f in o.findings]
    seen.extend(_derived(seen))
    roots = _correlate(seen)
    alarms = [s for s in seen if s.code in _ALARMS]
    alarm_roots = _fold_alarms(alarms, roots, ran)  # may add alarms to the probe roots: runs first
    merged: dict[str, _Root] = {}
    for root in roots + alarm_roots:  # one hint per code, even if a probe already used an alarm code
        merged.setdefault(root.code, _Root(root.code)).seen.extend(root.seen)
    ran_ok = sum(o.status is ProbeStatus.OK for o in ran)
    return sort_hints((_hint(root, firmware, seen, ran_ok) for root in merged.values()), SYMPTOMS)


def _correlate(seen: Sequence[Seen]) -> list[_Root]:
    """Rules first, then one root per remaining catalogue code; alarm findings are left out."""
    pool = [s for s in seen if s.code not in _ALARMS]
    roots: dict[HintCode, _Root] = {}
    for rule in RULES:
        fired = [s for s in pool if any(t(s) for t in rule.fires)]
        if not fired or (rule.requires is not None and not any(rule.requires(s) for s in seen)):
            continue
        explains = (*rule.explains, same_alert(fired))
        explained = [s for s in pool if s not in fired and any(t(s) for t in explains)]
        roots.setdefault(rule.root, _Root(rule.root)).seen.extend(fired + explained)
        pool = [s for s in pool if s not in fired and s not in explained]
    for s in pool:
        code = hint_code(s.code)
        if code is not None:
            roots.setdefault(code, _Root(code)).seen.append(s)
    return list(roots.values())


def _fold_alarms(alarms: Sequence[Seen], roots: list[_Root], ran: Sequence[ProbeOutcome]) -> list[_Root]:
    """Fold corroborated alarms into probe root causes; return the roots that alarms alone make."""
    extra: dict[str, _Root] = {}
    contradicted: list[Seen] = []
    for alarm in alarms:
        home = _corroborating_root(alarm, roots)
        if home is not None:
            home.seen.append(alarm)
        elif _contradicted(alarm, roots, ran):
            contradicted.append(alarm)
        else:  # nothing could confirm or refute it: report the alarm as the RMX states it
            code = HintCode(alarm.code)
            extra.setdefault(code, _Root(code)).seen.append(alarm)
    if contradicted:
        root = _Root(UNCORROBORATED, contradicted + _healthy_evidence(ran, contradicted))
        extra[UNCORROBORATED] = root
    return list(extra.values())


def _corroborating_root(alarm: Seen, roots: Sequence[_Root]) -> _Root | None:
    """The probe root cause that confirms ``alarm``: wire problems for registration alarms,
    certificate problems (or the FE refusing the client certificate) for certificate alarms."""
    def rank(root: _Root) -> tuple[int, int]:
        return (-root.severity().rank, roots.index(root))

    if alarm.code == REGISTRATION_ALARM:
        serious = [r for r in roots if r.code not in _NOT_A_REGISTRATION_FAILURE and (
            r.severity() is Severity.CRITICAL or r.code in _REGISTRATION_WARNINGS)]
        wire = [r for r in serious if r.probes() & set(_WIRE_PROBES)]
        pick = sorted(wire or serious, key=rank)
    else:
        claims = certificate_alarm_claims(alarm.get("alarm_texts"))
        pick = sorted((r for r in roots if r.severity().rank >= Severity.WARNING.rank and (
            "certificate" in r.probes() or r.code.startswith(("CLIENT_CERT_", "CERT_")))
            and (claims is None or r.code in claims)), key=rank)
    return pick[0] if pick else None


def _contradicted(alarm: Seen, roots: Sequence[_Root], ran: Sequence[ProbeOutcome]) -> bool:
    """True when the probes that can check ``alarm`` ran and saw a healthy path.

    A registration alarm needs a clean MTLS handshake + SIP answer and no critical root. A
    certificate alarm whose claim is known (expired, about to expire, subject name...) is refuted
    by a certificate check that ran and did not find that claim; an unknown one needs a clean
    certificate check (and a clean handshake when the mtls probe ran) and no critical root.
    """
    by_name = {o.probe: o for o in ran}
    claims = certificate_alarm_claims(alarm.get("alarm_texts")) if alarm.code == CERTIFICATE_ALARM else None
    if claims is not None:
        checked = by_name.get("certificate")
        return (checked is not None and checked.status is ProbeStatus.OK
                and not any(f.code in claims for f in checked.findings))
    if any(r.severity() is Severity.CRITICAL for r in roots):
        return False
    needed = ["mtls"] if alarm.code == REGISTRATION_ALARM else ["certificate"]
    optional = [] if alarm.code == REGISTRATION_ALARM else ["mtls"]
    for name in needed + [n for n in optional if n in by_name]:
        outcome = by_name.get(name)
        if outcome is None or not _clean(outcome):
            return False
    return True


def _clean(outcome: ProbeOutcome) -> bool:
    return outcome.status is ProbeStatus.OK and all(f.severity is Severity.INFO for f in outcome.findings)


def _healthy_evidence(ran: Sequence[ProbeOutcome], alarms: Sequence[Seen]) -> list[Seen]:
    """What contradicts the alarms: the informational findings of the probes that checked (the
    handshake that succeeded, the certificate summary), or a line saying the probe found nothing."""
    wanted = {"mtls"} | ({"certificate"} if any(a.code == CERTIFICATE_ALARM for a in alarms) else set())
    lines: list[Seen] = []
    for outcome in ran:
        if outcome.probe not in wanted or outcome.status is not ProbeStatus.OK:
            continue
        if outcome.probe == "mtls" and not _clean(outcome):
            continue
        facts = [f for f in outcome.findings if f.severity is Severity.INFO]
        if facts:
            lines.extend(Seen(outcome.probe, f) for f in facts)
        else:
            said = "ran; none of its findings confirms the alarm" if outcome.findings else "ran and found no problem"
            lines.append(Seen(outcome.probe, Finding(f"{outcome.probe.upper()}_OK", Severity.INFO, said)))
    return lines


def _derived(seen: Sequence[Seen]) -> list[Seen]:
    """The RMX issuer absent from the Front End's CertificateRequest CA list, from two probes.

    Both names are DER bytes (:class:`probes.model.Facts`): one Name has several RFC 4514
    renderings (emailAddress, serialNumber, escaping), so text would invent a difference.
    """
    if any(s.code == HintCode.CAPTURE_TRUNCATED_CA_LIST for s in seen):
        return []
    issuer = next((s.facts.rmx_issuer for s in seen if s.facts.rmx_issuer is not None), None)
    listed = next(((s.probe, s.facts.ca_list) for s in seen if s.facts.ca_list), None)
    if issuer is None or listed is None:
        return []
    probe, names = listed
    if issuer in names:
        return []
    finding = Finding(HintCode.CAPTURE_TRUNCATED_CA_LIST, Severity.WARNING,
                      f"the Front End's CertificateRequest lists {len(names)} CA(s), not the RMX issuer",
                      {"rmx_issuer": _rendered(issuer), "ca_names": [_rendered(n) for n in names]},
                      Facts(rmx_issuer=issuer, ca_list=names))
    return [Seen(f"certificate+{probe}", finding)]  # cited as the correlation of both probes


def _rendered(der: bytes) -> str:
    """A DER Name as RFC 4514 text, for the evidence line only."""
    try:
        return dn_to_rfc4514(der)
    except ValueError:
        return "#" + der.hex()


_TRUST_CODES = frozenset({"CLIENT_CERT_UNKNOWN_CA", "CERT_CHAIN_INCOMPLETE", "CAPTURE_TRUNCATED_CA_LIST",
                          "CAPTURE_RESET_AFTER_CLIENT_CERT"})  # not self-signed: its issuer is itself


def _cn(subject: str) -> str:
    return next((part.split("=", 1)[1] for part in subject.split(",") if part.strip().upper().startswith("CN=")), "")


def _pool(seen: Sequence[Seen]) -> str:
    """The Front End pool FQDN the RMX registers with: the SNI the probe sent, else a registrar name."""
    for s in seen:
        if s.probe != "mtls":
            continue
        name = str(s.get("sni") or "") or str(s.get("registrar") or "").rpartition(":")[0]
        if name and not name.replace(".", "").isdigit() and ":" not in name and "[" not in name:
            return name
    return ""


def _concrete(code: str, steps: list[str], seen: Sequence[Seen]) -> list[str]:
    """Catalogue steps with this target's facts filled in: the certificate's name and issuer, the pool."""
    subject = next((str(s.get("subject")) for s in seen if s.probe == "certificate" and s.get("subject")), "") \
        or next((str(s.get("rmx_subject")) for s in seen if s.get("rmx_subject")), "")
    cn = _cn(subject)
    pool = _pool(seen)
    registrar = next((str(s.get("registrar")) for s in seen if s.probe == "mtls" and s.get("registrar")), "")
    issuer = next((str(s.get("rmx_issuer")) for s in seen if s.get("rmx_issuer")), "") or next(
        (str(s.get("issuer")) for s in seen if s.probe == "certificate" and s.get("issuer")), "")
    out = []
    for step in steps:
        # The FE takes the peer's name from the certificate: that is the computer to define.
        text = step.replace("<RMX signaling FQDN>", cn) if cn else step
        text = text.replace("<registrar pool FQDN>", pool) if pool else text
        text = text.replace("<registrar>", registrar) if registrar else text
        if issuer and code in _TRUST_CODES and "Trusted Root Certification Authorities" in text:
            text += f" The RMX certificate here is issued by {issuer}."
        out.append(text)
    return out


def _probes(seen: Sequence[Seen]) -> tuple[str, ...]:
    """The probes whose observations a hint rests on, in report order (a derived fact counts for both)."""
    names = {name for s in seen for name in s.probe.split("+")}
    order = ("certificate", "mtls", "alarms", "capture")
    return tuple(sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)))


def _hint(root: _Root, firmware: Firmware, context: Sequence[Seen] = (), ran: int = 0) -> Hint:
    spec = CATALOGUE[root.code]
    severity = Severity.INFO if root.code == UNCORROBORATED else root.severity()
    lines: list[str] = []
    sentences: list[str] = []
    for s in sorted(root.seen, key=lambda s: s.code != root.code):  # the root's own findings first
        line = evidence_line(s.probe, s.finding)
        if line not in lines:
            lines.append(line)
        sentence = evidence_sentence(s.probe, s.finding.message)
        if sentence not in sentences:
            sentences.append(sentence)
    title, steps = spec.title, remediation(root.code, firmware)
    own = [s for s in root.seen if s.code == root.code and s.probe == "mtls"]
    if root.code == HintCode.CLIENT_CERT_REJECTED and own and all(s.facts.no_client_cert for s in own):
        title, steps = NO_CLIENT_CERT_TITLE, list(NO_CLIENT_CERT_STEPS)
    steps = _concrete(root.code, steps, [*root.seen, *context])
    # An alarm the probes contradict is not agreement: only the probes that saw a problem count.
    agreeing = _probes([s for s in root.seen if root.code != UNCORROBORATED or s.code in _ALARMS])
    return Hint(root.code, severity, title, tuple(lines), tuple(steps), tuple(sentences),
                tuple(str(p) for p in FIX_ON[root.code]), agreeing, ran)
