"""Remediation actions bound to hint codes: an argv command or an HTTP request, dry-run by default.

The action gets the hint and the target as JSON (stdin for a command, the body of an HTTP
request) and as ``RMXDIAG_*`` environment variables; nothing else of the daemon's environment
is passed to a command (so no secret can leak into it). HTTP requests have one total deadline and
a bounded answer (:mod:`daemon.serve.outbound`). Commands run without a shell through
:mod:`probes.children`: the timeout covers the whole action (output included), the output is read
as it comes and only its tail kept, and the command's whole process tree is ended at the timeout
and when the command exits (a grandchild it left running would act unsupervised).
"""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from daemon.config.model import ActionConfig
from daemon.report import Hint
from daemon.serve import outbound
from probes import children

log = logging.getLogger("rmxdiag.actions")

_OUTPUT_CAP = 4096  # bytes of command output kept in the report


class Outcome(enum.StrEnum):
    """Closed set of action outcomes (a metric label)."""

    DRY_RUN = "dry_run"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class ActionResult:
    """What one action did, for the stored report."""

    code: str
    kind: str  # "command" | "http"
    outcome: Outcome
    detail: str
    duration_seconds: float
    output_dropped_bytes: int = 0  # command output beyond the kept tail

    def to_json(self) -> dict[str, Any]:
        """Report shape."""
        doc: dict[str, Any] = {"code": self.code, "kind": self.kind, "outcome": str(self.outcome),
                               "detail": self.detail, "duration_seconds": round(self.duration_seconds, 3)}
        if self.kind == "command":
            doc["output_dropped_bytes"] = self.output_dropped_bytes
        return doc


def matching(actions: tuple[ActionConfig, ...], target: str,
             hints: tuple[Hint, ...]) -> list[tuple[ActionConfig, Hint]]:
    """The (action, hint) pairs that apply: opt-in per code, optionally limited to some targets."""
    pairs = []
    for hint in hints:
        for action in actions:
            if action.code == hint.code and (not action.targets or target in action.targets):
                pairs.append((action, hint))
    return pairs


def _payload(target: str, hint: Hint) -> dict[str, Any]:
    return {"target": target, "hint": hint.to_json()}


def _environment(target: str, hint: Hint) -> dict[str, str]:
    # A minimal environment: the daemon's own variables (credentials directory, notify socket...)
    # are not the action's business.
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "RMXDIAG_TARGET": target,
            "RMXDIAG_HINT_CODE": hint.code, "RMXDIAG_HINT_SEVERITY": str(hint.severity)}


def _run_command(action: ActionConfig, target: str, hint: Hint) -> tuple[Outcome, str, int]:
    done = children.run(action.command, timeout=action.timeout, env=_environment(target, hint),
                        stdin=json.dumps(_payload(target, hint)).encode(), keep=_OUTPUT_CAP)
    text = done.output.decode(errors="replace").strip()
    left = f" (ended {done.leftovers} process(es) it left running)" if done.leftovers else ""
    if done.returncode is None:
        outcome, head = Outcome.TIMEOUT, f"killed after {action.timeout:g}s"
    elif done.returncode == 0:
        outcome, head = Outcome.OK, "exit 0"
    else:
        outcome, head = Outcome.FAILED, f"exit {done.returncode}"
    return outcome, head + left + (f": {text}" if text else ""), done.dropped


def _run_http(action: ActionConfig, target: str, hint: Hint) -> tuple[Outcome, str]:
    assert action.http_url is not None  # noqa: S101 (checked by the caller)
    try:
        answer = outbound.request(action.http_method, action.http_url, json=_payload(target, hint),
                                  timeout=action.timeout)
    except TimeoutError:
        return Outcome.TIMEOUT, f"no complete answer within {action.timeout:g}s"
    except outbound.RequestFailed as exc:
        return Outcome.FAILED, str(exc)
    detail = f"HTTP {answer.status}" + (f" (answer cut at {outbound.MAX_ANSWER} bytes)" if answer.truncated else "")
    return (Outcome.OK if 200 <= answer.status < 300 else Outcome.FAILED), detail


def execute(action: ActionConfig, target: str, hint: Hint) -> ActionResult:
    """Run (or, in dry-run mode, describe) one action; never raises."""
    kind = "command" if action.command else "http"
    start = time.monotonic()
    if action.dry_run:
        # Stored in the run and shown on its page: never the URL's inline credentials.
        what = (" ".join(action.command) if action.command
                else f"{action.http_method} {outbound.shown_url(action.http_url or '')}")
        return ActionResult(hint.code, kind, Outcome.DRY_RUN, f"would run: {what}", 0.0)
    dropped = 0
    try:
        if action.command:
            outcome, detail, dropped = _run_command(action, target, hint)
        elif action.http_url:
            outcome, detail = _run_http(action, target, hint)
        else:
            outcome, detail = Outcome.FAILED, "neither a command nor an http_url is configured"
    except OSError as exc:
        outcome, detail = Outcome.FAILED, f"could not start: {exc.strerror or type(exc).__name__}"
    result = ActionResult(hint.code, kind, outcome, detail, time.monotonic() - start, dropped)
    log.info("remediation action for %s on %s: %s (%s)", hint.code, target, outcome, kind)
    return result
