"""The daemon's web pages (``/``, ``/targets/NAME``, ``/runs/ID``) from its live state and store.

Builds the page rows from the configuration, the current snapshot and the report store, and
hands them to :mod:`daemon.html.pages`. Reports are redacted by value before rendering, like
every JSON answer of the endpoint. Stored runs never change once written, so the short summary
the overview lists for each is read from disk once and kept (bounded).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from daemon.config.model import Config
from daemon.html import pages
from daemon.html.view import as_dict, as_list, status_of, text, verdict_line
from daemon.report import TargetReport
from daemon.serve.snapshot import Snapshot
from daemon.serve.store import ReportStore, target_of
from probes.redact import redact_doc

_SUMMARIES_KEPT = 512
# The probes whose results the overview reads (the two certificate chains); the rest of a report
# (findings, ladders of the capture, alarm lists) is only drawn on the target's own page.
_OVERVIEW_RESULTS = frozenset({"mtls", "certificate"})


class RunSummaries:
    """Verdict and headline of stored runs, read once per run id (stored runs are immutable)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, pages.RunRow] = OrderedDict()

    def rows(self, store: ReportStore | None, ids: list[str]) -> list[pages.RunRow]:
        """Rows for ``ids`` (newest first as given); runs that cannot be read are left out."""
        out = []
        for run_id in ids:
            with self._lock:
                row = self._kept.get(run_id)
            if row is None and store is not None:
                doc = store.load(run_id)
                if doc is None:
                    continue
                row = _summary(run_id, redact_doc(doc))
                with self._lock:
                    self._kept[run_id] = row
                    while len(self._kept) > _SUMMARIES_KEPT:
                        self._kept.popitem(last=False)
            if row is not None:
                out.append(row)
        return out


def _summary(run_id: str, doc: Any) -> pages.RunRow:
    targets = [as_dict(t) for t in as_list(as_dict(doc).get("targets"))]
    head = targets[0] if targets else {}
    return pages.RunRow(run_id, target_of(run_id) or "?", status_of(head) if head else "unknown",
                        text(as_dict(doc).get("generated_at")), verdict_line(head) if head else "")


def overview_doc(report: TargetReport) -> dict[str, Any]:
    """The parts of a target's report document the overview reads: verdict, hints, probe errors and
    the results that hold the certificate chains (a 1,000-target overview skips the rest)."""
    probes = []
    for outcome in report.probes:
        doc: dict[str, Any] = {"probe": outcome.probe, "status": str(outcome.status),
                               "error": outcome.error.to_json() if outcome.error else None}
        if outcome.probe in _OVERVIEW_RESULTS and outcome.result is not None:
            doc["result"] = outcome.result.to_json()
        probes.append(doc)
    return {"name": report.name, "status": str(report.status), "probes": probes,
            "hints": [h.to_json() for h in report.hints]}


def _row(config: Config, snap: Snapshot, name: str, full: bool = True) -> pages.TargetRow:
    target = config.target(name)
    state = snap.targets.get(name)
    doc = (state.report.to_json() if full else overview_doc(state.report)) if state else None
    return pages.TargetRow(name, target.firmware if target else "?", redact_doc(doc) if doc else None,
                           state.finished if state else None,
                           target.expiry_warning_days if target else config.settings.expiry_warning_days)


def _recent(store: ReportStore | None, name: str | None = None) -> list[str]:
    ids = store.ids() if store else []
    if name is not None:
        ids = [i for i in ids if target_of(i) == name]
    return ids[::-1][: pages.MAX_RUNS_LISTED]


def overview(config: Config, snap: Snapshot, store: ReportStore | None, summaries: RunSummaries,
             now: datetime | None = None) -> str:
    """``/``."""
    rows = [_row(config, snap, name, full=False) for name in snap.order]
    return pages.overview(rows, summaries.rows(store, _recent(store)), now or datetime.now(UTC))


def target(config: Config, snap: Snapshot, store: ReportStore | None, summaries: RunSummaries, name: str, *,
           now: datetime | None = None) -> str | None:
    """``/targets/NAME`` (None when NAME is not a configured target)."""
    if name not in snap.order:
        return None
    return pages.target_page(_row(config, snap, name), summaries.rows(store, _recent(store, name)),
                             now or datetime.now(UTC))


def run(config: Config, store: ReportStore | None, run_id: str, now: datetime | None = None) -> str | None:
    """``/runs/ID`` (None when no such run is stored)."""
    doc = store.load(run_id) if store else None
    if doc is None:
        return None
    return pages.run_page(run_id, redact_doc(doc), now or datetime.now(UTC), config.settings.expiry_warning_days)
