"""Whole pages: the daemon's overview (``/``), a target's page, a stored run's page, and the
self-contained report file of the CLI (``--format html``).

Every page is one HTML document with one inline stylesheet (admitted by its hash), no script,
no external reference and no form. In the daemon, links are relative (``targets/NAME`` from
``/``, ``../runs/ID`` from a target page), so the pages work behind a reverse proxy's path
prefix; the report file links only inside itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon import __version__
from daemon.html import sections
from daemon.html.escape import Markup, join, render, url_part
from daemon.html.style import CSP_META, CSS
from daemon.html.view import (
    STATUSES,
    as_dict,
    as_list,
    client_chain,
    earliest,
    server_chains,
    status_of,
    text,
    verdict_line,
)

_EMPTY = Markup("")
MAX_RUNS_LISTED = 20


@dataclass(frozen=True)
class TargetRow:
    """One configured target on the overview: its latest report document (None: none finished yet)."""

    name: str
    firmware: str
    target: Mapping[str, Any] | None
    finished: float | None  # Unix time the latest run ended
    warn_days: int = 30  # the target's certificate expiry warning threshold


@dataclass(frozen=True)
class RunRow:
    """One stored alert-driven run: its id, target, verdict word and start time."""

    run_id: str
    target: str
    status: str
    generated_at: str
    headline: str


def document(title: str, body: Markup, *, meta_csp: bool = False) -> str:
    """A whole HTML page around ``body`` (``meta_csp``: carry the policy in the file itself)."""
    csp = render('<meta http-equiv="Content-Security-Policy" content="$p">', p=CSP_META) if meta_csp else _EMPTY
    return render(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">$csp'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><title>$title</title>'
        '<link rel="icon" href="data:,"><style>$css</style></head><body>$body'
        '<footer>rmxdiag $version</footer></body></html>\n',
        csp=csp, title=title, css=Markup(CSS), body=body, version=__version__)


def _stamp(finished: float | None, now: datetime) -> str:
    if finished is None:
        return "—"
    when = datetime.fromtimestamp(finished, UTC)
    ago = max(0.0, (now - when).total_seconds())
    age = f"{ago:.0f} s" if ago < 120 else f"{ago / 60:.0f} min" if ago < 7200 else f"{ago / 3600:.1f} h"
    return f"{when:%Y-%m-%d %H:%M:%S}Z ({age} ago)"


def _nav(links: Iterable[tuple[str, str]]) -> Markup:
    return render('<nav class="noprint">$a</nav>',
                  a=join(render('<a href="$h">$t</a>', h=href, t=label) for label, href in links))


def _head(title: str, subtitle: Markup | str, nav: Markup) -> Markup:
    return render('<header class="top"><h1 class="wrap">$title</h1><span class="muted">$sub</span>$nav</header>',
                  title=title, sub=subtitle, nav=nav)


def _counts(statuses: Sequence[str]) -> Markup:
    parts = [render('<span>$badge $n</span>', badge=sections.badge(s), n=statuses.count(s))
             for s in (*STATUSES, "pending") if statuses.count(s)]
    return render('<div class="counts">$p</div>', p=join(parts))


def _row_status(row: TargetRow) -> str:
    return status_of(row.target) if row.target is not None else "pending"


def _overview_row(row: TargetRow, href: str, now: datetime, json_href: str | None) -> Markup:
    target = row.target
    status = _row_status(row)
    if target is None:
        cause = render('<span class="muted">no run finished yet</span>')
        client = server = sections.expiry(None, now)
    else:
        hints = [as_dict(h) for h in as_list(target.get("hints"))]
        head = hints[0] if hints else None
        cause = render('<code>$c</code> $t$more', c=text(head.get("code")), t=text(head.get("title")),
                       more=f" (+{len(hints) - 1} more)" if len(hints) > 1 else "") if head else (
            render('<span class="muted">$t</span>', t=verdict_line(target).split(": ", 2)[-1]))
        client = sections.expiry(earliest(client_chain(target)), now, row.warn_days)
        fe = [c for _, chain in server_chains(target) for c in chain]
        server = sections.expiry(earliest(fe), now, row.warn_days)
    json_link = render(' <a class="noprint" href="$h">JSON</a>', h=json_href) if json_href else _EMPTY
    return render('<tr data-target="$name" data-status="$status"><td>$badge</td><td><a href="$href">$name</a>$json'
                  '</td><td>$fw</td><td class="wrap">$cause</td><td>$client</td><td>$server</td><td>$when</td></tr>',
                  name=row.name, status=status, badge=sections.badge(status), href=href, json=json_link,
                  fw=row.firmware, cause=cause, client=client, server=server, when=_stamp(row.finished, now))


def _targets_table(rows: Sequence[TargetRow], now: datetime, target_href: Any,
                   json_href: Any = None) -> Markup:
    order = {s: n for n, s in enumerate((*STATUSES, "pending"))}
    ranked = sorted(rows, key=lambda r: order[_row_status(r)])  # stable: config order within a verdict
    body = join(_overview_row(r, target_href(r.name), now, json_href(r.name) if json_href else None)
                for r in ranked)
    return render('<table class="targets"><thead><tr><th>verdict</th><th>target</th><th>firmware</th>'
                  '<th>root cause</th><th>RMX chain expires</th><th>Front End chain expires</th>'
                  '<th>last run</th></tr></thead><tbody>$body</tbody></table>', body=body)


def _grouped_causes(rows: Sequence[TargetRow], target_href: Any) -> Markup:
    """Each distinct root cause once, with its fix steps and the targets that have it."""
    groups: dict[tuple[str, str, str, tuple[str, ...]], list[str]] = {}
    for row in rows:
        for hint in map(as_dict, as_list((row.target or {}).get("hints"))):
            key = (text(hint.get("severity"), "info"), text(hint.get("code")), text(hint.get("title")),
                   tuple(text(s) for s in as_list(hint.get("remediation"))))
            groups.setdefault(key, []).append(row.name)
    if not groups:
        return render('<p class="muted">No root cause: every target that finished a run is healthy.</p>')
    rank = {"critical": 0, "warning": 1, "info": 2}
    blocks = []
    for (severity, code, title, steps), names in sorted(groups.items(),
                                                       key=lambda kv: (rank.get(kv[0][0], 3), -len(kv[1]), kv[0][1])):
        who = join((render('<a href="$h">$n</a>', h=target_href(n), n=n) for n in names), ", ")
        blocks.append(render(
            '<div class="cause s-$sev" data-code="$code"><h3>$badge <code>$code</code> $title</h3>'
            '<div>$count target(s): $who</div><div class="muted">What to do</div><ol class="fix">$steps</ol></div>',
            sev=severity, badge=sections.badge(severity), code=code, title=title, count=len(names), who=who,
            steps=join(render("<li>$s</li>", s=s) for s in steps)))
    return join(blocks)


def overview(rows: Sequence[TargetRow], runs: Sequence[RunRow], now: datetime) -> str:
    """The daemon's ``/``: every target's verdict, the root causes with fixes, the last runs."""
    def target_href(name: str) -> str:
        return "targets/" + url_part(name)

    def json_href(name: str) -> str:
        return "api/v1/report?target=" + url_part(name)

    scheduled = sorted((r for r in rows if r.finished is not None), key=lambda r: -(r.finished or 0))
    sched_items = join(render('<li>$badge <a href="$h">$n</a> $when</li>', badge=sections.badge(_row_status(r)),
                              h=target_href(r.name), n=r.name, when=_stamp(r.finished, now))
                       for r in scheduled[:MAX_RUNS_LISTED])
    body = render(
        '$head$counts<h2>Targets</h2>$table<h2>Root causes and what to do</h2>$causes'
        '<h2>Last runs</h2><h3>Scheduled (latest per target)</h3><ul>$sched</ul>'
        '<h3>Alert-driven troubleshooting runs</h3>$runs',
        head=_head("rmxdiag", f"{len(rows)} target(s) · {now:%Y-%m-%d %H:%M:%S}Z",
                   _nav((("raw JSON report", "api/v1/report"), ("stored runs (JSON)", "api/v1/report/runs"),
                         ("metrics", "metrics")))),
        counts=_counts([_row_status(r) for r in rows]), table=_targets_table(rows, now, target_href, json_href),
        causes=_grouped_causes(rows, target_href), sched=sched_items or render("<li>none yet</li>"),
        runs=_run_list(runs, "runs/"))
    return document("rmxdiag: overview", body)


def _run_list(runs: Sequence[RunRow], prefix: str) -> Markup:
    if not runs:
        return render('<p class="muted">None stored.</p>')
    items = join(render('<li>$badge <a href="$h">$id</a> <span class="muted wrap">$line</span></li>',
                        badge=sections.badge(r.status), h=prefix + url_part(r.run_id), id=r.run_id, line=r.headline)
                 for r in runs)
    return render('<ul class="runs">$i</ul>', i=items)


def target_page(row: TargetRow, runs: Sequence[RunRow], now: datetime) -> str:
    """``/targets/NAME``: the latest run of one target, drawn, plus its stored runs."""
    quoted = url_part(row.name)
    nav = _nav((("overview", "../"), ("JSON", f"../api/v1/report?target={quoted}"), ("metrics", "../metrics")))
    head = _head(row.name, f"firmware {row.firmware} · last run {_stamp(row.finished, now)}", nav)
    if row.target is None:
        main = render('<p>$badge No run of this target has finished yet; this page fills in after the first '
                      'one.</p>', badge=sections.badge("pending"))
    else:
        main = sections.target_body(row.target, now, row.warn_days)
    body = render('$head$main<h2>Stored troubleshooting runs</h2>$runs', head=head, main=main,
                  runs=_run_list(runs, "../runs/"))
    return document(f"rmxdiag: {row.name}", body)


def _actions(doc: Mapping[str, Any]) -> Markup:
    done = [as_dict(a) for a in as_list(doc.get("actions"))]
    if not done:
        return _EMPTY
    rows = join(render('<tr><td><code>$c</code></td><td>$k</td><td>$o</td><td>$s</td><td class="wrap">$d</td></tr>',
                       c=text(a.get("code")), k=text(a.get("kind")), o=text(a.get("outcome")),
                       s=text(a.get("duration_seconds")), d=text(a.get("detail"))) for a in done)
    after = as_dict(doc.get("after_actions"))
    cleared = join(render("<li><code>$c</code>: $v</li>", c=code, v="cleared" if ok else "still present")
                   for code, ok in as_dict(after.get("cleared")).items())
    after_html = render('<p>After the actions the target is $badge</p><ul>$c</ul>',
                        badge=sections.badge(text(after.get("status"), "unknown")), c=cleared) if after else _EMPTY
    return render('<h2>Remediation actions</h2><table><thead><tr><th>code</th><th>kind</th><th>outcome</th>'
                  '<th>seconds</th><th>detail</th></tr></thead><tbody>$rows</tbody></table>$after',
                  rows=rows, after=after_html)


def run_page(run_id: str, doc: Mapping[str, Any], now: datetime, warn_days: int = 30) -> str:
    """``/runs/ID``: one stored troubleshooting run, drawn like a target page."""
    targets = [as_dict(t) for t in as_list(doc.get("targets"))]
    links = [("overview", "../"), ("JSON", "../api/v1/report/runs/" + url_part(run_id))]
    links += [(f"target {text(t.get('name'))}", "../targets/" + url_part(text(t.get("name")))) for t in targets]
    head = _head(f"Run {run_id}", f"{text(doc.get('trigger'), 'run')} · started {text(doc.get('generated_at'))}",
                 _nav(links))
    extra = [_actions(doc)]
    body = join(sections.target_body(t, now, warn_days, extra) for t in targets) or render(
        '<p class="muted">This stored run holds no target.</p>')
    return document(f"rmxdiag: run {run_id}", render("$h$b", h=head, b=body))


def error_file(detail: str) -> str:
    """The CLI's ``--format html`` when the run could not happen: the UNKNOWN line, so the page a
    redirect wrote (``> report.html``) says why instead of being empty."""
    head = _head("rmxdiag: could not run", "UNKNOWN", _EMPTY)
    return document("rmxdiag: could not run",
                    render('$h<p class="wrap">UNKNOWN: $d</p>', h=head, d=detail), meta_csp=True)


def report_file(doc: Mapping[str, Any], now: datetime | None = None, warn_days: int = 30) -> str:
    """The CLI's ``--format html``: the whole report as one self-contained, script-free file."""
    now = now or datetime.now(UTC)
    targets = [as_dict(t) for t in as_list(doc.get("targets"))]
    statuses = [status_of(t) for t in targets]
    summary = _EMPTY
    if len(targets) > 1:
        rows = [TargetRow(text(t.get("name")), "", t, None) for t in targets]
        summary = render('$counts$table', counts=_counts(statuses),
                         table=_targets_table(rows, now, lambda n: "#t-" + url_part(n)))
    blocks = join(render('<section class="target" id="t-$id"><h1 class="wrap">$name</h1>$body</section>',
                         id=url_part(text(t.get("name"))), name=text(t.get("name")),
                         body=sections.target_body(t, now, warn_days)) for t in targets)
    head = _head("rmxdiag report", f"generated {text(doc.get('generated_at'))} · {len(targets)} target(s)", _EMPTY)
    return document("rmxdiag report", render("$h$s$b", h=head, s=summary, b=blocks), meta_csp=True)
