"""The Prometheus exporter: ONE custom collector over the immutable snapshot.

Each scrape builds fresh metric families from the snapshot object it read once, so targets that
vanished on reload vanish from ``/metrics`` and a scrape never sees half an update. Registries
are always created here (never prometheus_client's global default). Label values come only from
the config (target names) and closed enums (probe names, phases, stages, reasons, hint codes,
severities, alarm categories, action outcomes): free text never reaches a label.

:func:`render` writes the text exposition itself, byte for byte what prometheus_client's
``generate_latest`` writes for :class:`SnapshotCollector` (a unit test holds the two together):
each target's lines are formatted once per finished run (its :class:`TargetState` is immutable),
by the scheduler's thread that finished it (:func:`prepare`), and reused by every scrape until
the next run replaces it, so a 1,000-target ``/metrics`` joins strings on the event loop
(prometheus_client's sample objects took about 200 ms for 1,000 targets holding real reports).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.core import Metric as MetricFamily
from prometheus_client.registry import Collector

from daemon import __version__
from daemon.serve.snapshot import Snapshot, TargetState
from probes.model import Metric, ProbeStatus

log = logging.getLogger("rmxdiag.exporter")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Lines:
    """A family that formats its samples into exposition lines as they are added (one target's)."""

    __slots__ = ("_format", "_order", "documentation", "lines", "name")
    _specs: ClassVar[dict[tuple[str, tuple[str, ...]], tuple[str, tuple[int, ...]]]] = {}

    def __init__(self, name: str, documentation: str, labels: list[str] | None = None) -> None:
        self.name = name
        self.documentation = documentation
        key = (name, tuple(labels or ()))
        spec = self._specs.get(key)
        if spec is None:
            # The exposition sorts label names (generate_latest does): a template in that order.
            order = tuple(sorted(range(len(key[1])), key=lambda i: key[1][i]))
            pairs = ",".join(f'{key[1][i]}="%s"' for i in order)
            spec = self._specs[key] = (f"{name}{{{pairs}}} " if pairs else f"{name} ", order)
        self._format, self._order = spec
        self.lines: list[str] = []

    def add_metric(self, labels: list[str], value: float) -> None:
        """One sample, formatted like prometheus_client's text exposition."""
        order = self._order
        if len(order) == 1:
            head = self._format % _escape(labels[0])
        elif order:
            head = self._format % tuple([_escape(labels[i]) for i in order])
        else:
            head = self._format
        self.lines.append(head + _go_float(value) + "\n")


def _go_float(value: float) -> str:
    """A sample value as the text exposition writes it (prometheus_client's floatToGoString)."""
    if value == 1.0:  # most samples: success, info and hint gauges
        return "1.0"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


_ESCAPED: dict[str, str] = {}  # label values repeat (target names, closed enums): escaped once


def _escape(value: str) -> str:
    found = _ESCAPED.get(value)
    if found is None:
        found = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
        if len(_ESCAPED) < 100_000:
            _ESCAPED[value] = found
    return found


def _gauge_lines(name: str, documentation: str, labels: list[str] | None = None) -> _Lines:
    return _Lines(name, documentation, labels)


class _Families:
    """The metric families of one scrape, in the order the README's metrics table lists them."""

    def __init__(self, gauge: Callable[..., Any] = GaugeMetricFamily) -> None:
        g = gauge
        self.success = g("rmxdiag_probe_success", "1 when the probe ran and found nothing critical",
                         labels=["target", "probe"])
        self.duration = g("rmxdiag_probe_duration_seconds", "Wall time of the probe's last run",
                          labels=["target", "probe"])
        self.failure = g("rmxdiag_probe_failure_info", "Where and why the probe's last run failed (closed enums)",
                         labels=["target", "probe", "stage", "reason"])
        self.phase = g(Metric.MTLS_PHASE_SECONDS.value, "Duration of each phase of the MTLS probe",
                       labels=["target", "phase"])
        self.tls = g(Metric.TLS_VERSION.value, "TLS version negotiated with the registrar",
                     labels=["target", "version"])
        self.sip = g(Metric.SIP_STATUS.value, "SIP status code of the OPTIONS answer", labels=["target"])
        self.not_after = g(Metric.CERT_NOT_AFTER.value,
                           "notAfter of each certificate of the RMX (client) and Front End (server) chains",
                           labels=["target", "role", "position"])
        self.hint = g("rmxdiag_hint_active", "1 for each diagnosed hint", labels=["target", "code", "severity"])
        self.alarms = g(Metric.ACTIVE_ALARMS.value, "Active RMX alarms per category", labels=["target", "category"])
        self.last_run = g("rmxdiag_last_run_timestamp_seconds", "When the target's last run finished",
                          labels=["target"])
        self.actions = (CounterMetricFamily if gauge is GaugeMetricFamily else gauge)(
            "rmxdiag_remediation_actions", "Remediation actions by outcome (dry_run, ok, failed, timeout)",
            labels=["target", "code", "outcome"])
        # The families a probe result's samples land in (probes.model.Metric names them).
        self.by_metric = {Metric.MTLS_PHASE_SECONDS: self.phase, Metric.TLS_VERSION: self.tls,
                          Metric.SIP_STATUS: self.sip, Metric.CERT_NOT_AFTER: self.not_after,
                          Metric.ACTIVE_ALARMS: self.alarms}

    def all(self) -> list[MetricFamily]:
        return [self.success, self.duration, self.failure, self.phase, self.tls, self.sip, self.not_after,
                self.hint, self.alarms, self.last_run, self.actions]


def _add_target(f: _Families, name: str, state: TargetState) -> None:
    seen: set[tuple[Metric, tuple[str, ...]]] = set()
    for outcome in state.report.probes:
        if outcome.status is ProbeStatus.SKIPPED:
            continue
        f.success.add_metric([name, outcome.probe], 1.0 if outcome.healthy else 0.0)
        f.duration.add_metric([name, outcome.probe], outcome.duration_seconds)
        if outcome.failure is not None:
            f.failure.add_metric([name, outcome.probe, outcome.failure[0], outcome.failure[1]], 1.0)
        elif outcome.error is not None:
            f.failure.add_metric([name, outcome.probe, "probe", str(outcome.error.kind)], 1.0)
        if outcome.result is None:
            continue
        try:
            for sample in outcome.result.samples():
                # One series per label set: the first probe in report order wins (the certificate
                # probe's view of the RMX chain over the mtls probe's).
                if (sample.metric, sample.labels) not in seen:
                    seen.add((sample.metric, sample.labels))
                    f.by_metric[sample.metric].add_metric([name, *sample.labels], sample.value)
        except Exception as exc:  # a result bug must cost its own samples, never the scrape
            log.warning("skipping %s result metrics of %s: %s", outcome.probe, name, type(exc).__name__)
            log.debug("result samples traceback", exc_info=True)
    for hint in state.report.hints:
        f.hint.add_metric([name, hint.code, str(hint.severity)], 1.0)
    f.last_run.add_metric([name], state.finished)


class SnapshotCollector(Collector):
    """Renders the metrics contract from whatever snapshot ``source`` returns at scrape time."""

    def __init__(self, source: Callable[[], Snapshot], *, global_metrics: bool = True) -> None:
        self._source = source
        self._global = global_metrics

    def collect(self) -> Iterator[MetricFamily]:
        """Fresh families from one snapshot read."""
        snap = self._source()
        f = _Families()
        for name, state in snap.states():
            _add_target(f, name, state)
        for (target, code, outcome), count in sorted(snap.actions.items()):
            f.actions.add_metric([target, code, outcome], float(count))
        yield from f.all()
        if self._global:
            reload_ok = GaugeMetricFamily("rmxdiag_config_last_reload_successful",
                                          "1 when the last configuration (re)load succeeded")
            reload_ok.add_metric([], 1.0 if snap.config_ok else 0.0)
            yield reload_ok
            write_errors = CounterMetricFamily("rmxdiag_report_write_errors",
                                               "Troubleshooting reports that could not be stored (disk full...)")
            write_errors.add_metric([], float(snap.report_write_errors))
            yield write_errors
            build = InfoMetricFamily("rmxdiag_build", "rmxdiag build information")
            build.add_metric([], {"version": __version__})
            yield build


def render_with_client(source: Callable[[], Snapshot], *, global_metrics: bool = True) -> bytes:
    """The text exposition through prometheus_client (a fresh registry): the reference :func:`render` matches."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source, global_metrics=global_metrics))
    return generate_latest(registry)


# target name -> (the state its lines were formatted from, its lines per family): a state is
# immutable, so the lines hold until a new run replaces it (identity, not equality, is checked;
# holding the state keeps its id from being reused).
_formatted: dict[str, tuple[TargetState, tuple[str, ...]]] = {}
_formatted_lock = threading.Lock()


def forget() -> None:
    """Drop every formatted target (the next render formats all of them: what benchmarks compare)."""
    with _formatted_lock:
        _formatted.clear()


def prepare(name: str, state: TargetState) -> None:
    """Format ``state``'s lines now (in the thread that finished the run), so a scrape only joins them."""
    _target_lines(name, state)


def _target_lines(name: str, state: TargetState) -> tuple[str, ...]:
    hit = _formatted.get(name)
    if hit is not None and hit[0] is state:
        return hit[1]
    f = _Families(_gauge_lines)
    _add_target(f, name, state)
    families: list[Any] = list(f.all()[:-1])  # (the actions counter comes from the snapshot)
    lines = tuple("".join(family.lines) for family in families)
    with _formatted_lock:
        _formatted[name] = (state, lines)
    return lines


def _header(family: Any, kind: str) -> str:
    name = family.name + ("_total" if kind == "counter" else "")
    help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def render(source: Callable[[], Snapshot], *, global_metrics: bool = True) -> bytes:
    """The text exposition of ``source``'s snapshot (what :func:`render_with_client` writes, faster)."""
    snap = source()
    states = snap.states()
    per_target = [_target_lines(name, state) for name, state in states]
    if len(states) > 1:  # a full scrape: forget targets no longer configured
        with _formatted_lock:
            for gone in set(_formatted) - set(snap.order):
                del _formatted[gone]
    empty = _Families(_gauge_lines)
    families: list[Any] = list(empty.all())
    out: list[str] = []
    for index, family in enumerate(families[:-1]):
        out.append(_header(family, "gauge"))
        out.extend(lines[index] for lines in per_target)
    actions = families[-1]
    for (target, code, outcome), count in sorted(snap.actions.items()):
        actions.add_metric([target, code, outcome], float(count))
    out.append(_header(actions, "counter"))
    out.extend(line.replace(actions.name, actions.name + "_total", 1) for line in actions.lines)
    if global_metrics:
        out.append(_header(_Lines("rmxdiag_config_last_reload_successful",
                                  "1 when the last configuration (re)load succeeded"), "gauge"))
        out.append(f"rmxdiag_config_last_reload_successful {_go_float(1.0 if snap.config_ok else 0.0)}\n")
        out.append(_header(_Lines("rmxdiag_report_write_errors",
                                  "Troubleshooting reports that could not be stored (disk full...)"), "counter"))
        out.append(f"rmxdiag_report_write_errors_total {_go_float(float(snap.report_write_errors))}\n")
        out.append("# HELP rmxdiag_build_info rmxdiag build information\n# TYPE rmxdiag_build_info gauge\n")
        out.append(f'rmxdiag_build_info{{version="{_escape(__version__)}"}} 1.0\n')
    return "".join(out).encode("utf-8")
