"""Alert-driven troubleshooting: Alertmanager webhook v4 -> one run per configured target.

Only alerts whose ``target_label`` names a CONFIGURED target start anything (an alert can never
make the daemon connect to a host of its choosing). A target triggered again within the cooldown
starts nothing (the cooldown is kept in the state directory, so a restart does not reset it);
at most ``MAX_PENDING`` runs wait, further ones are dropped with a log line (the
webhook still answers 202: Alertmanager retries only on 5xx, and a retry would not help).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from daemon.config.model import Config
from daemon.report import Report, TargetReport, now_utc
from daemon.serve import actions, outbound
from daemon.serve.snapshot import SnapshotHolder
from daemon.serve.state import DaemonState
from daemon.serve.store import ReportStore
from probes.redact import redact_doc
from probes.target import Settings, Target

log = logging.getLogger("rmxdiag.webhook")

MAX_PENDING = 32
RUN_WORKERS = 4

TroubleshootRunner = Callable[[Target, Settings], TargetReport]


def firing_targets(payload: Any, label: str) -> list[str]:
    """Values of ``label`` in the firing alerts of a v4 payload (order kept, duplicates removed)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload (no alerts list)")
    names: list[str] = []
    for alert in payload["alerts"][:1000]:
        if not isinstance(alert, dict) or alert.get("status") != "firing":
            continue
        labels = alert.get("labels")
        value = labels.get(label) if isinstance(labels, dict) else None
        if isinstance(value, str) and value not in names:
            names.append(value)
    return names


def _without_live_capture(target: Target) -> Target:
    return dataclasses.replace(target, capture=dataclasses.replace(target.capture, interface=None))


class Troubleshooter:
    """Starts, bounds and records alert-driven runs."""

    def __init__(self, holder: SnapshotHolder, runner: TroubleshootRunner) -> None:
        self.holder = holder
        self.runner = runner
        self._pool = cf.ThreadPoolExecutor(max_workers=RUN_WORKERS, thread_name_prefix="troubleshoot")
        self._lock = threading.Lock()
        self._pending = 0
        self.started = 0
        self.dropped = 0
        self.config: Config | None = None
        self.state: DaemonState | None = None  # cooldowns and the run sequence, kept across restarts
        self.store: ReportStore | None = None
        self.port: int | None = None  # the bound HTTP port: the default page URLs derive from it
        self._closed = False

    def configure(self, config: Config) -> None:
        """Adopt a (re)loaded configuration (one state and store per state directory: a reload keeps them)."""
        root = config.settings.state_dir
        if self.state is None or self.state.root != root:
            self.state = DaemonState(root)
            self.store = ReportStore(root, config.reports_keep, self.state)
        elif self.store is not None:
            self.store.keep = max(1, config.reports_keep)
        self.state.forget({t.name for t in config.targets}, config.webhook.cooldown)
        self.config = config

    def trigger(self, names: list[str]) -> dict[str, str]:
        """Start a run for each configured, not-cooling-down target; what happened to each name."""
        config = self.config
        decisions: dict[str, str] = {}
        state = self.state
        if config is None or state is None:
            return decisions
        started: list[str] = []
        unknown: list[str] = []
        for name in names:
            target = config.target(name)
            if target is None:
                decisions[name] = "unknown_target"
                unknown.append(name)
                continue
            with self._lock:
                if name in started or state.cooling(name, config.webhook.cooldown):
                    decisions[name] = "cooldown"
                    continue
                if self._pending >= MAX_PENDING:
                    self.dropped += 1
                    decisions[name] = "overloaded"
                    log.warning("too many troubleshooting runs waiting: alert for %s dropped", name)
                    continue
                started.append(name)
                self._pending += 1
                self.started += 1
            if not config.webhook.live_capture:
                target = _without_live_capture(target)
            self._pool.submit(self._troubleshoot, config, target)
            decisions[name] = "started"
        state.start_cooldown(started)  # saved in the state directory: a restart keeps the cooldown
        if unknown:  # one line per alert payload, however many names it carries
            log.warning("alert names %d target(s) that are not configured, ignored: %s%s", len(unknown),
                        ", ".join(repr(n[:64]) for n in unknown[:3]), ", ..." if len(unknown) > 3 else "")
        return decisions

    def _troubleshoot(self, config: Config, target: Target) -> None:
        try:
            self._run(config, target)
        except Exception as exc:  # a bug must not kill the worker thread silently
            log.error("troubleshooting run of %s failed with a bug: %s", target.name, type(exc).__name__)
            log.debug("troubleshooting bug traceback", exc_info=True)
        finally:
            with self._lock:
                self._pending -= 1

    def _run(self, config: Config, target: Target) -> None:
        started = now_utc()
        report = self.runner(target, config.settings)
        results = []
        for action, hint in actions.matching(config.actions, target.name, report.hints):
            if self._closed:  # the daemon is stopping: start no further action
                break
            result = actions.execute(action, target.name, hint)
            self.holder.count_action(target.name, hint.code, str(result.outcome))
            results.append(result)
        document: dict[str, Any] = Report(started, (report,)).to_json()
        document["trigger"] = "alertmanager"
        if results:
            document["actions"] = [r.to_json() for r in results]
            executed = {r.code for r in results if r.outcome is actions.Outcome.OK}
            if executed:
                # Re-probe after a real action and say, per code, whether the hint cleared.
                after = self.runner(target, config.settings)
                still = {h.code for h in after.hints}
                document["after_actions"] = {
                    "status": str(after.status),
                    "cleared": {code: code not in still for code in sorted(executed)},
                    "target": after.to_json(),
                }
        run_id = self.store.save(started.strftime("%Y%m%dT%H%M%SZ"), target.name, document) if self.store else None
        if self.store is not None and run_id is None:
            self.holder.count_report_write_error()
        head = report.hints[0] if report.hints else None
        log.info("troubleshooting run %s: target=%s status=%s hints=%d%s", run_id or "(not stored)", target.name,
                 report.status, len(report.hints), f" root_cause={head.code}" if head else "")
        if config.notify is not None:
            self._notify(config, target.name, report, run_id)

    def _notify(self, config: Config, name: str, report: TargetReport, run_id: str | None) -> None:
        notify = config.notify
        assert notify is not None  # noqa: S101 (checked by the caller)
        head = report.hints[0] if report.hints else None
        # The run's page (the target's page when the run could not be stored).
        url = config.external_url(self.port) + (f"/runs/{quote(run_id, safe='')}" if run_id
                                                 else f"/targets/{quote(name, safe='')}")
        summary = (f"rmxdiag {name}: {report.status}: {head.title} [{head.code}]. Fix: "
                   + " / ".join(head.remediation)) if head else f"rmxdiag {name}: {report.status}"
        body = {"target": name, "status": str(report.status), "run_id": run_id, "url": url,
                "root_cause": head.to_json() if head else None,
                "text": summary.rstrip(".") + f". Details: {url}"}
        headers = {}
        try:
            if notify.token is not None:
                headers["Authorization"] = "Bearer " + notify.token.read().decode()
            answer = outbound.request("POST", notify.url, json=redact_doc(body), headers=headers,
                                      timeout=notify.timeout)
        except TimeoutError:
            log.warning("notification for %s: no complete answer within %gs", name, notify.timeout)
        except (OSError, outbound.RequestFailed, UnicodeDecodeError) as exc:
            log.warning("notification for %s failed: %s", name, str(exc) if isinstance(exc, outbound.RequestFailed)
                        else type(exc).__name__)
        else:
            if answer.status >= 300:
                log.warning("notification for %s answered HTTP %d", name, answer.status)
            else:
                log.info("notification for %s: HTTP %d in %.2fs", name, answer.status, answer.seconds)

    def close(self) -> None:
        """Stop taking runs and starting actions; running ones end at their deadlines."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
