"""The handshake as a ladder diagram (inline SVG) between the RMX and the Front End.

Two sources: the mtls probe's recorded steps (each TLS message and alert in wire order, then
how the connection ended and the SIP OPTIONS exchange) and a capture's per-connection history
(``C:``/``S:`` tokens). Each step is an arrow between the two lifelines, or a note when nothing
crossed the wire; the certificate messages carry the subjects, the CertificateRequest its CA
list, alerts say who sent them. Labels are clipped to fit; the full text is in each step's
``<title>`` (a tooltip). Every value goes through :func:`daemon.html.escape.render`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.html.escape import Markup, clip, join, render
from daemon.html.view import as_dict, as_list, text

FROM_RMX, FROM_FE, NOTE = "from_rmx", "from_fe", "note"
BAD, GOOD = "bad", "good"

WIDTH, LEFT, RIGHT, MIDDLE = 760, 110, 650, 380
_TOP = 56  # below the actor boxes
_LABEL_CHARS, _DETAIL_CHARS, _TITLE_CHARS = 70, 96, 2000
_MAX_CA_NAMES = 4

# How a registrar attempt ended, when that is not an alert already in the recorded steps:
# (direction, label, detail). The probe is the RMX's stand-in, so "we" are the RMX.
_ENDINGS: dict[str, tuple[str, str, str]] = {
    "dns_failure": (NOTE, "DNS: the registrar name does not resolve", ""),
    "dns_timeout": (NOTE, "DNS: the resolver did not answer before the deadline", ""),
    "refused": (FROM_FE, "TCP RST: connection refused", "nothing listens on the port, or a firewall rejects"),
    "timeout": (NOTE, "no answer before the deadline", ""),
    "unreachable": (NOTE, "no route to the registrar", ""),
    "connect_error": (NOTE, "the connection failed", ""),
    "no_answer": (NOTE, "TCP connected, but not one TLS byte came back", ""),
    "stalled": (NOTE, "the Front End started the handshake, then stalled", ""),
    "not_tls": (NOTE, "the port answered with something that is not TLS", ""),
    "closed": (FROM_FE, "TCP FIN: closed without an alert", "sent by the Front End"),
    "reset": (FROM_FE, "TCP RST: reset without an alert", "sent by the Front End"),
    "closed_after_client_cert": (FROM_FE, "TCP FIN right after the RMX certificate",
                                 "sent by the Front End: it refused the RMX certificate without an alert"),
    "reset_after_client_cert": (FROM_FE, "TCP RST right after the RMX certificate",
                                "sent by the Front End: it refused the RMX certificate without an alert"),
    "server_cert_untrusted": (NOTE, "the RMX cannot verify the Front End chain", ""),
    "server_cert_name_mismatch": (NOTE, "the Front End certificate does not carry the name connected to", ""),
    "server_cert_expired": (NOTE, "the Front End certificate has expired", ""),
    "server_cert_not_yet_valid": (NOTE, "the Front End certificate is not yet valid", ""),
    "server_cert_invalid": (NOTE, "the Front End certificate failed verification", ""),
    "local_version_refused": (NOTE, "the RMX's TLS range refused the version the Front End chose", ""),
    "local_policy_refused": (NOTE, "the RMX's security policy refused the Front End's key, signature or cipher", ""),
    "handshake_error": (NOTE, "the handshake failed", ""),
    "bad_response": (NOTE, "the answer is not a valid SIP response", ""),
}
_SIP_ENDINGS: dict[str, tuple[str, str, str]] = {
    "timeout": (NOTE, "no SIP answer before the deadline", ""),
    "closed": (FROM_FE, "TCP FIN: closed without a SIP answer", "sent by the Front End"),
    "reset": (FROM_FE, "TCP RST: reset without a SIP answer", "sent by the Front End"),
}
_ALERT = re.compile(r"^alert (\d+) ")
_CAPTURE_ALERT = re.compile(r"^Alert\((\d+)?,?([^)]*)\)$")


@dataclass(frozen=True)
class Step:
    """One row of the ladder: an arrow (``from_rmx``/``from_fe``) or a ``note``, with detail lines."""

    direction: str
    label: str
    details: tuple[str, ...] = ()
    tone: str = ""  # "", "bad" or "good"


def _subject(chain: Sequence[Any]) -> str:
    leaf = as_dict(chain[0]) if chain else {}
    return text(leaf.get("subject"))


def _cert_details(chain: Sequence[Any], empty: bool = False) -> tuple[str, ...]:
    if empty:
        return ("empty: no certificate sent",)
    if not chain:
        return ()
    leaf = as_dict(chain[0])
    lines = [f"subject {text(leaf.get('subject'), '?')}"]
    if leaf.get("issuer"):
        lines.append(f"issuer {text(leaf.get('issuer'))}")
    lines.append(f"{len(chain)} certificate(s) in the chain")
    return tuple(lines)


def _ca_list_details(names: Any, issuer: Any, listed: Any) -> tuple[tuple[str, ...], str]:
    if names is None:
        return (), ""
    names = [text(n) for n in as_list(names)]
    if not names:
        return ("CA list empty: any CA accepted",), ""
    lines = [f"CA list: {len(names)} name(s)", *names[:_MAX_CA_NAMES]]
    if len(names) > _MAX_CA_NAMES:
        lines.append(f"… {len(names) - _MAX_CA_NAMES} more")
    if listed is False:
        lines.append("the RMX issuer is NOT in the list" + (f": {text(issuer)}" if issuer else ""))
        return tuple(lines), BAD
    if listed is True:
        lines.append("the RMX issuer is in the list")
    return tuple(lines), ""


def _alert_step(direction: str, label: str) -> Step:
    number = _ALERT.match(label)
    benign = number is not None and number.group(1) == "0"  # close_notify: an orderly close
    who = "sent by the Front End" if direction == FROM_FE else "sent by the RMX (rmxdiag, as the RMX)"
    return Step(direction, label, (who,), "" if benign else BAD)


def mtls_steps(registrar: Mapping[str, Any], client_chain: Sequence[Any]) -> list[Step]:
    """The ladder of one registrar attempt of the mtls probe (its JSON result)."""
    steps: list[Step] = []
    stage, reason = text(registrar.get("stage")), text(registrar.get("reason"))
    server_chain = as_list(registrar.get("server_chain"))
    if stage == "connect":
        steps.append(Step(FROM_RMX, "TCP SYN", (f"to {text(registrar.get('address') or registrar.get('registrar'))}",)))
    seen_fe_cert = seen_rmx_cert = False
    for raw in as_list(registrar.get("ladder")):
        entry = as_dict(raw)
        direction = FROM_FE if entry.get("direction") == FROM_FE else FROM_RMX
        label = text(entry.get("message"), "?")
        if label.startswith("alert "):
            steps.append(_alert_step(direction, label))
        elif label == "Certificate" and direction == FROM_FE and not seen_fe_cert:
            seen_fe_cert = True
            steps.append(Step(direction, "Certificate (the Front End chain)", _cert_details(server_chain)))
        elif label.startswith("Certificate") and direction == FROM_RMX and not seen_rmx_cert:
            seen_rmx_cert = True
            empty = bool(registrar.get("client_cert_empty"))
            steps.append(Step(direction, "Certificate (the RMX chain)", _cert_details(client_chain, empty),
                              BAD if empty else ""))
        elif label == "CertificateRequest":
            details, tone = _ca_list_details(registrar.get("ca_names"), registrar.get("rmx_issuer"),
                                             registrar.get("rmx_issuer_listed"))
            steps.append(Step(direction, label, details, tone))
        elif label == "ClientHello" and registrar.get("sni"):
            steps.append(Step(direction, label, (f"SNI {text(registrar.get('sni'))}",)))
        else:
            steps.append(Step(direction, label))
    status = registrar.get("sip_status")
    if status is not None or stage == "sip":
        steps.append(Step(FROM_RMX, "SIP OPTIONS"))
    if status is not None:
        steps.append(_sip_answer(status, registrar.get("sip_reason"), registrar.get("ms_diagnostics"),
                                 registrar.get("sip_server")))
    elif stage == "sip" and reason in _SIP_ENDINGS:
        steps.append(_ending(_SIP_ENDINGS[reason]))
    if reason == "ok" and status is None:
        version = text(registrar.get("tls_version"))
        steps.append(Step(NOTE, f"handshake complete ({version})" if version else "handshake complete", (), GOOD))
    elif stage != "sip" and reason in _ENDINGS:
        verify = text(registrar.get("verify_message"))
        ending = _ending(_ENDINGS[reason])
        if verify and ending.direction == NOTE:
            ending = Step(ending.direction, ending.label, (*ending.details, verify), ending.tone)
        steps.append(ending)
    return steps


def _ending(spec: tuple[str, str, str]) -> Step:
    direction, label, detail = spec
    return Step(direction, label, (detail,) if detail else (), BAD)


def _diagnostics(items: Any) -> tuple[str, ...]:
    out = []
    for raw in as_list(items):
        diag = as_dict(raw)
        parts = [text(diag.get("id"), "?")] + [f'{k}="{text(diag.get(k))}"' for k in ("reason", "source")
                                                if diag.get(k)]
        out.append("ms-diagnostics: " + ";".join(parts))
    return tuple(out)


def _sip_answer(status: Any, reason: Any, diagnostics: Any, server: Any = None) -> Step:
    ok = isinstance(status, int) and 200 <= status < 300
    details = _diagnostics(diagnostics) + ((f"Server: {text(server)}",) if server else ())
    return Step(FROM_FE, f"SIP {text(status)} {text(reason)}".rstrip(), details, GOOD if ok else BAD)


def capture_steps(connection: Mapping[str, Any]) -> list[Step]:
    """The ladder of one captured connection (client = the RMX, server = the Front End)."""
    steps: list[Step] = []
    answers = [as_dict(s) for s in as_list(connection.get("sip")) if as_dict(s).get("status") is not None]
    server_chain, client_chain = as_list(connection.get("server_chain")), as_list(connection.get("client_chain"))
    for raw in as_list(connection.get("history")):
        entry = text(raw)
        side, sep, what = entry.partition(":")
        if not sep or side not in ("C", "S"):
            steps.append(Step(NOTE, "… (history cut)" if entry == "…" else entry))
            continue
        direction = FROM_RMX if side == "C" else FROM_FE
        alert = _CAPTURE_ALERT.match(what)
        if what in ("RST", "FIN"):
            who = "sent by the Front End" if direction == FROM_FE else "sent by the RMX"
            steps.append(Step(direction, f"TCP {what}", (who,), BAD if what == "RST" else ""))
        elif alert:
            level, name = alert.group(1), alert.group(2) or "encrypted"
            label = f"alert {name}" + (" (fatal)" if level == "2" else "")
            steps.append(_alert_step(direction, label) if name != "encrypted" else Step(direction, label))
        elif what == "Certificate":
            chain = server_chain if direction == FROM_FE else client_chain
            empty = direction == FROM_RMX and not client_chain
            steps.append(Step(direction, f"Certificate (the {'Front End' if direction == FROM_FE else 'RMX'} chain)",
                              _cert_details(chain, empty), BAD if empty else ""))
        elif what == "CertificateRequest":
            details, tone = _ca_list_details(connection.get("ca_names"), None, connection.get("rmx_issuer_in_ca_list"))
            steps.append(Step(direction, what, details, tone))
        elif what.startswith("SIP ") and direction == FROM_FE and answers:
            answer = answers.pop(0)
            steps.append(_sip_answer(answer.get("status"), answer.get("reason"), answer.get("ms_diagnostics")))
        else:
            steps.append(Step(direction, what))
    return steps


def _wrapped(details: Sequence[str]) -> list[str]:
    """Detail lines cut to the drawing's width: a long line takes up to three rows, then is clipped."""
    lines: list[str] = []
    for line in details:
        pieces = [line[i:i + _DETAIL_CHARS] for i in range(0, min(len(line), 3 * _DETAIL_CHARS), _DETAIL_CHARS)]
        if len(line) > 3 * _DETAIL_CHARS:
            pieces[-1] = clip(pieces[-1], _DETAIL_CHARS - 1)
        lines.extend(pieces or [""])
    return lines


def svg(steps: Sequence[Step], caption: str, left: str = "RMX", right: str = "Front End") -> Markup:
    """The ladder of ``steps`` as one inline SVG (no script, no external reference)."""
    rows: list[Markup] = []
    y = _TOP
    for number, step in enumerate(steps, 1):
        lines = _wrapped(step.details)
        rows.append(_row(number, step, lines, y))
        y += 30 + 14 * len(lines) + 6
    height = y + 10
    actors = join(render('<rect class="actor" x="$x" y="8" width="180" height="32" rx="4"/>'
                         '<text class="actor-name" x="$cx" y="29" text-anchor="middle">$name</text>',
                         x=cx - 90, cx=cx, name=clip(name, 24))
                  for cx, name in ((LEFT, left), (RIGHT, right)))
    lifelines = join(render('<line class="life" x1="$x" y1="40" x2="$x" y2="$y2"/>', x=cx, y2=height - 4)
                     for cx in (LEFT, RIGHT))
    return render('<svg xmlns="http://www.w3.org/2000/svg" class="ladder" role="img" aria-label="$caption" '
                  'viewBox="0 0 $w $h" width="$w" height="$h">$actors$lifelines$rows</svg>',
                  caption=caption, w=WIDTH, h=height, actors=actors, lifelines=lifelines, rows=join(rows))


def _row(number: int, step: Step, lines: Sequence[str], y: int) -> Markup:
    label = f"{number}. {step.label}"
    title = clip("\n".join((label, *step.details)), _TITLE_CHARS)
    classes = " ".join(c for c in ("step", step.tone, "note" if step.direction == NOTE else "") if c)
    details = join(render('<text class="det" x="$x" y="$y" text-anchor="middle">$t</text>',
                          x=MIDDLE, y=y + 40 + 14 * i, t=line)
                   for i, line in enumerate(lines))
    if step.direction == NOTE:
        arrow = Markup("")
    else:
        start, end = (LEFT, RIGHT) if step.direction == FROM_RMX else (RIGHT, LEFT)
        tip = -9 if end > start else 9
        arrow = render('<line class="arrow" x1="$x1" y1="$y" x2="$x2" y2="$y"/>'
                       '<polygon class="arrow" points="$e,$y $b,$up $b,$down"/>',
                       x1=start, x2=end + tip, y=y + 22, e=end, b=end + tip, up=y + 18, down=y + 26)
    return render('<g class="$cls" data-n="$n" data-dir="$dir"><title>$title</title>'
                  '<text class="msg" x="$x" y="$ly" text-anchor="middle">$label</text>$arrow$details</g>',
                  cls=classes, n=number, dir=step.direction, title=title, x=MIDDLE, ly=y + 16,
                  label=clip(label, _LABEL_CHARS), arrow=arrow, details=details)
