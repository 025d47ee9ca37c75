"""The blocks of a target's page: root causes, handshake ladders, certificate chains, alarms,
capture evidence and the probes' own outcomes. Each takes a target document (JSON schema 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from daemon.html import ladder
from daemon.html.escape import Markup, clip, join, render
from daemon.html.view import (
    alarms,
    as_dict,
    as_list,
    client_chain,
    connections,
    days_left,
    evidence_parts,
    probe_of,
    registrars,
    result_of,
    server_chains,
    status_of,
    text,
    verdict_line,
)

MAX_LADDERS = 8  # captured connections drawn per page (the table lists the rest)
MAX_NAME = 400  # characters of a certificate name shown (a hostile one can be kilobytes)
_EMPTY = Markup("")


def badge(status: str) -> Markup:
    """The verdict as colour AND word (``v-critical`` + ``CRITICAL``)."""
    return render('<span class="verdict v-$s" data-status="$s">$word</span>', s=status, word=status.upper())


def verdict_block(target: Mapping[str, Any]) -> Markup:
    """The target's verdict badge and its one-line verdict."""
    return render('<p class="headline">$badge <span class="verdict-line wrap">$line</span></p>',
                  badge=badge(status_of(target)), line=verdict_line(target))


def expiry(cert: Mapping[str, Any] | None, now: datetime, warn_days: int = 30) -> Markup:
    """A notAfter with the days left, marked when expired or within ``warn_days``."""
    if not cert:
        return render('<span class="muted">—</span>')
    left = days_left(cert.get("not_after"), now)
    if left is None:
        return render('<span class="muted">$v</span>', v=text(cert.get("not_after"), "?"))
    cls = "expired" if left < 0 else "soon" if left < warn_days else ""
    words = f"expired {-left:.0f} d ago" if left < 0 else f"{left:.0f} d left"
    when = text(cert.get("not_after"))
    return render('<span class="$c" title="$title">$day ($words)</span>', c=cls, day=when[:10], words=words,
                  title=clip(f"{when}: {text(cert.get('subject'))}", 300))


def causes(target: Mapping[str, Any]) -> Markup:
    """Every root cause: severity, code, title, the evidence of each probe, numbered fix steps."""
    hints = [as_dict(h) for h in as_list(target.get("hints"))]
    if not hints:
        return render('<p class="muted">No problem found.</p>')
    blocks = []
    for number, hint in enumerate(hints, 1):
        severity = text(hint.get("severity"), "info")
        evidence = join(_evidence_item(text(line)) for line in as_list(hint.get("evidence")))
        steps = join(render("<li>$s</li>", s=text(step)) for step in as_list(hint.get("remediation")))
        blocks.append(render(
            '<div class="cause s-$sev" data-code="$code"><h3>$n. $badge <code>$code</code> $title</h3>'
            '<div class="muted">Evidence</div><ul class="evidence">$evidence</ul>'
            '<div class="muted">What to do</div><ol class="fix">$steps</ol></div>',
            sev=severity, n=number, badge=badge(severity), code=text(hint.get("code")),
            title=text(hint.get("title")), evidence=evidence, steps=steps))
    return join(blocks)


def _evidence_item(line: str) -> Markup:
    probe, rest = evidence_parts(line)
    tag = render('<span class="probe-tag">$p</span>', p=probe) if probe else _EMPTY
    return render("<li>$tag$rest</li>", tag=tag, rest=rest)


def handshakes(target: Mapping[str, Any], max_ladders: int = MAX_LADDERS) -> Markup:
    """The ladders: one per registrar the mtls probe tried, one per captured connection."""
    parts: list[Markup] = []
    chain = client_chain(target)
    for reg in registrars(target):
        name = text(reg.get("registrar"), "?")
        steps = ladder.mtls_steps(reg, chain)
        phases = ", ".join(f"{k} {float(v) * 1000:.1f} ms" for k, v in as_dict(reg.get("phases")).items()
                           if isinstance(v, int | float))
        outcome = f"{text(reg.get('stage'))}: {text(reg.get('reason'))}"
        parts.append(render(
            '<div class="ladder-box" data-source="mtls"><h3>Probe of <code>$name</code></h3>$svg'
            '<p class="muted">Stopped at $outcome$tls$phases</p></div>',
            name=name, svg=ladder.svg(steps, f"handshake with {name}", "RMX (rmxdiag)", "Front End"),
            outcome=outcome, tls=f"; {text(reg.get('tls_version'))}" if reg.get("tls_version") else "",
            phases=f"; {phases}" if phases else ""))
    conns = connections(target)
    for conn in conns[:max_ladders]:
        name = text(conn.get("connection"), "?")
        parts.append(render(
            '<div class="ladder-box" data-source="capture"><h3>Captured connection <code>$name</code></h3>$svg'
            '<p class="muted">Outcome: $outcome</p></div>',
            name=name, svg=ladder.svg(ladder.capture_steps(conn), f"captured connection {name}",
                                      "RMX (client)", "Front End (server)"),
            outcome=text(conn.get("outcome"), "?")))
    if len(conns) > max_ladders:
        parts.append(render('<p class="muted">$n more captured connection(s) are listed under Capture.</p>',
                            n=len(conns) - max_ladders))
    if not parts:
        return render('<p class="muted">No handshake recorded (the mtls probe did not run and no capture '
                      'was read).</p>')
    return join(parts)


def _name(value: str) -> Markup:
    """A distinguished name in monospace; one longer than a screenful is cut, whole in its tooltip."""
    if len(value) <= MAX_NAME:
        return render('<span class="mono">$v</span>', v=value)
    return render('<span class="mono" title="$v">$cut</span> <span class="muted">($n characters)</span>',
                  v=value, cut=clip(value, MAX_NAME), n=len(value))


def _cert_block(cert: Mapping[str, Any], now: datetime, warn_days: int) -> Markup:
    sans = ", ".join(text(s) for s in as_list(cert.get("sans")))
    return render(
        '<div class="cert"><div><strong>[$pos]</strong> $subject</div>'
        '<div class="muted">issuer $issuer</div>'
        '<div>valid until $expiry</div>$sans$serial</div>',
        pos=text(cert.get("position"), "?"), subject=_name(text(cert.get("subject"), "?")),
        issuer=_name(text(cert.get("issuer"), "?")), expiry=expiry(cert, now, warn_days),
        sans=render('<div class="muted">SAN <span class="mono">$s</span></div>', s=sans) if sans else _EMPTY,
        serial=render('<div class="muted">serial <span class="mono">$s</span></div>', s=text(cert.get("serial")))
        if cert.get("serial") else _EMPTY)


def chains(target: Mapping[str, Any], now: datetime, warn_days: int = 30) -> Markup:
    """The RMX (client) chain and each Front End (server) chain, side by side."""
    columns = [("RMX certificate chain (client)", "client", client_chain(target))]
    columns += [(f"Front End chain (server) from {reg}", "server", chain) for reg, chain in server_chains(target)]
    if not any(chain for _, _, chain in columns):
        return render('<p class="muted">No certificate was read.</p>')
    blocks = []
    for title, role, chain in columns:
        body = join(_cert_block(c, now, warn_days) for c in chain) if chain else render(
            '<p class="muted">not seen</p>')
        blocks.append(render('<div class="chain" data-role="$role"><h3 class="wrap">$title</h3>$body</div>',
                             role=role, title=title, body=body))
    return render('<div class="chains">$b</div>', b=join(blocks))


def alarm_table(target: Mapping[str, Any]) -> Markup:
    """The RMX's active alarms, with their meaning."""
    active = alarms(target)
    if not probe_of(target, "alarms") or probe_of(target, "alarms").get("status") == "skipped":
        return render('<p class="muted">No alarm source configured.</p>')
    if not active:
        return render('<p class="muted">No active alarm.</p>')
    rows = join(render('<tr><td>$time</td><td>$level</td><td>$cat</td><td class="wrap">$text</td>'
                       '<td class="muted wrap">$meaning</td></tr>',
                       time=text(a.get("time") or a.get("gmt_time")), level=text(a.get("level")),
                       cat=text(a.get("category")), text=text(a.get("description")), meaning=text(a.get("meaning")))
                for a in active)
    return render('<table class="alarms"><thead><tr><th>time</th><th>level</th><th>category</th>'
                  '<th>alarm</th><th>meaning</th></tr></thead><tbody>$rows</tbody></table>', rows=rows)


def capture_table(target: Mapping[str, Any]) -> Markup:
    """The capture's counts and one row per connection summary."""
    result = result_of(target, "capture")
    if not result:
        return render('<p class="muted">No capture read.</p>')
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(as_dict(result.get("outcomes")).items())) or "none"
    alerts = ", ".join(f"{k} {v}" for k, v in sorted(as_dict(result.get("alerts")).items())) or "none"
    rows = join(render('<tr><td class="mono">$c</td><td>$o</td><td>$v</td><td class="mono wrap">$h</td></tr>',
                       c=text(s.get("connection")), o=text(s.get("outcome")), v=text(s.get("tls_version"), "—"),
                       h=clip(" ".join(text(t) for t in as_list(s.get("history"))), 600))
                for s in connections(target))
    warnings = join(render("<li>$w</li>", w=text(w)) for w in as_list(result.get("warnings")))
    return render(
        '<p>$n connection(s) on port $port ($events events); outcomes: $outcomes; alerts: $alerts$omitted</p>'
        '<table class="capture"><thead><tr><th>connection</th><th>outcome</th><th>TLS</th><th>history</th></tr>'
        '</thead><tbody>$rows</tbody></table>$warnings',
        n=text(result.get("connections"), "0"), port=text(result.get("port"), "?"),
        events=text(result.get("events"), "0"), outcomes=outcomes, alerts=alerts,
        omitted=f"; {result.get('omitted_connections')} more not listed" if result.get("omitted_connections") else "",
        rows=rows, warnings=render('<ul class="muted">$w</ul>', w=warnings) if warnings else _EMPTY)


def probe_table(target: Mapping[str, Any]) -> Markup:
    """Each probe's status, duration, error and findings."""
    rows = []
    for probe in map(as_dict, as_list(target.get("probes"))):
        error = as_dict(probe.get("error"))
        findings = join(render('<li><code>$code</code> $msg</li>', code=text(f.get("code")),
                               msg=clip(text(f.get("message")), 2000))
                        for f in map(as_dict, as_list(probe.get("findings"))))
        duration = probe.get("duration_seconds")
        rows.append(render(
            '<tr><td>$name</td><td>$status</td><td>$ms</td><td class="wrap">$error<ul>$findings</ul></td></tr>',
            name=text(probe.get("probe")), status=text(probe.get("status")),
            ms=f"{float(duration) * 1000:.0f} ms" if isinstance(duration, int | float) else "—",
            error=f"{text(error.get('kind'))}: {text(error.get('detail'))}" if error else "", findings=findings))
    return render('<table class="probes"><thead><tr><th>probe</th><th>status</th><th>time</th>'
                  '<th>error and findings</th></tr></thead><tbody>$rows</tbody></table>', rows=join(rows))


def target_body(target: Mapping[str, Any], now: datetime, warn_days: int = 30,
                extra: Sequence[Markup] = ()) -> Markup:
    """Everything about one target, in the order an administrator reads it."""
    return render(
        '$verdict<h2>Root causes and what to do</h2>$causes<h2>Handshake</h2>$handshakes'
        '<h2>Certificate chains</h2>$chains<h2>RMX alarms</h2>$alarms<h2>Capture</h2>$capture$extra'
        '<h2>Probes</h2>$probes',
        verdict=verdict_block(target), causes=causes(target), handshakes=handshakes(target),
        chains=chains(target, now, warn_days), alarms=alarm_table(target), capture=capture_table(target),
        extra=join(extra), probes=probe_table(target))
