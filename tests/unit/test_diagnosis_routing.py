"""Every path from a finding to a hint is known: each finding a probe can emit lands on its own hint
or on a root cause the catalogue documents for it, never on another specific cause.

The findings are built by the probes' own code (tests/support/routing.py); the README's routing
table is generated from the same variants (tests/unit/test_readme_hints.py keeps it in sync).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.diagnosis.catalogue import CATALOGUE, FOLDS_INTO, GENERIC_SYMPTOMS, HintCode, hint_code, may_fold
from daemon.diagnosis.diagnose import diagnose, evidence_line
from daemon.diagnosis.rules import RULES
from probes import PROBES, get
from probes.model import ProbeOutcome, ProbeStatus, Severity
from probes.mtls import outcome as oc
from probes.mtls.outcome import Reason, Stage
from probes.tlswire import ALERTS, Alert, Sender, alert_hint
from tests.support.routing import (
    MTLS_CASES,
    MtlsCase,
    Variant,
    alert_table_codes,
    alone,
    mtls_result,
    reported_as,
    variants,
)

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = variants()
# Code-shaped string constants: the prefixes every finding code of a probe starts with.
_CODE = re.compile(r"^(CERT|CLIENT|REGISTRAR|TLS|SIP|RMX|ALARM|ALARMS|CAPTURE|MTLS|PFX)_[A-Z0-9_]+$")


@pytest.mark.parametrize("name", list(PROBES))
def test_each_probe_declares_every_code_its_source_names(name: str) -> None:
    """Given a probe package's source, When every code-shaped string constant is collected (outside
    ``__all__``), Then it is exactly the probe's declared finding codes (none undeclared, none stale)."""
    package = ROOT / "probes" / name
    found: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets) for n in ast.walk(node)}
        found |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                  and isinstance(node.value, str) and _CODE.match(node.value) and id(node) not in skip}
    assert found == set(get(name).findings)


def test_the_mtls_declaration_covers_every_outcome() -> None:
    # Given every (stage, reason, alert, after our certificate) the outcome mapping can see
    codes = {hint.code for stage in Stage for reason in Reason for number in (None, *ALERTS)
             for after in (False, True)
             if (hint := oc.hint_for(stage, reason, alert=number, after_client_cert=after)) is not None}
    # Then each code it names is declared, and the routing cases cover every reason
    assert codes <= get("mtls").findings
    # (an overloaded probe is no finding at all: rmxdiag was busy, no verdict on the registrar)
    assert {c.reason for c in MTLS_CASES} == set(Reason) - {Reason.OVERLOADED}


@pytest.mark.parametrize("stage", [Stage.CONNECT, Stage.TLS, Stage.SIP])
def test_an_overloaded_registrar_yields_no_finding(stage: Stage) -> None:
    # Given a registrar whose probe ran out of time because rmxdiag was busy
    result = mtls_result(MtlsCase(stage, Reason.OVERLOADED))
    # Then it says so in words but adds no finding (no hint, no MTLS_OK)
    assert result.findings() == [] and "rmxdiag was too busy" in result.describe()


@pytest.mark.parametrize("name", list(PROBES))
def test_every_declared_code_has_a_routed_variant(name: str) -> None:
    # Given the variants built by the probes' own code, Then each declared code of the probe has one
    built = {v.finding.code for v in VARIANTS if v.probe == name}
    assert built == set(get(name).findings)


@pytest.mark.parametrize("variant", VARIANTS, ids=[f"{v.probe}-{v.finding.code}-{v.when[:40]}" for v in VARIANTS])
def test_a_finding_alone_lands_on_its_own_hint_or_a_documented_root(variant: Variant) -> None:
    """Given one finding as its probe builds it, When it is the target's only finding, Then it is
    cited by exactly one hint, whose code is its own or a root the catalogue lets it fold into
    (an informational finding gives no hint)."""
    hints = alone(variant)
    codes = reported_as(variant, hints)
    if hint_code(variant.finding.code) is None:
        assert hints == () and variant.finding.severity is Severity.INFO
        return
    assert len(codes) == 1, f"{variant.finding.code} lost or reported twice: {[h.code for h in hints]}"
    assert may_fold(variant.finding.code, codes[0]), f"{variant.finding.code} re-labelled as {codes[0]}"
    if variant.finding.code not in GENERIC_SYMPTOMS:
        assert codes[0] == variant.finding.code, "alone, a specific finding is its own root cause"


def test_every_rule_takes_only_what_the_catalogue_lets_it_fold() -> None:
    # Given every rule, Then each finding code it may take is its root, a generic symptom, or
    # documents the rule's root among the causes it folds into
    wrong = sorted((rule.root, code) for rule in RULES for code in rule.codes() if not may_fold(code, rule.root))
    assert wrong == []


def test_folds_name_catalogue_codes_only() -> None:
    # Given the documented folds, Then every key and root is a hint code and no code folds into itself
    assert all(code in CATALOGUE and all(r in CATALOGUE and r != code for r in roots)
               for code, roots in FOLDS_INTO.items())


def test_every_catalogue_code_is_reachable_by_some_finding() -> None:
    # Given what every variant alone is reported as, plus the two hints only combinations make
    reached = {code for v in VARIANTS for code in reported_as(v, alone(v))}
    mtls_ok = next(v for v in VARIANTS if v.finding.code == "MTLS_OK")
    alarm = next(v for v in VARIANTS if v.finding.code == "RMX_ALARM_REGISTRATION")
    contradicted = diagnose([ProbeOutcome("mtls", ProbeStatus.OK, 0.0, (mtls_ok.finding,)),
                             ProbeOutcome("alarms", ProbeStatus.OK, 0.0, (alarm.finding,))])
    reached |= {h.code for h in contradicted}
    # Then each catalogue code is reached, and the alert table names only catalogue codes
    assert sorted(set(HintCode) - reached) == []
    assert alert_table_codes() <= set(CATALOGUE)


@pytest.mark.parametrize("number", sorted(ALERTS))
def test_one_alert_table_for_both_probes(number: int) -> None:
    """Given an alert from the Front End, Then the mtls probe's finding code and the capture's
    root (alone) are the same hint (e.g. 49, 50, 51, 80), when the table knows the alert."""
    reason = oc.alert_reason(number)
    for after in (False, True):
        mtls = oc.hint_for(Stage.TLS, reason, alert=number, after_client_cert=after)
        table = alert_hint(Alert(number, Sender.FE), after_client_cert=after)
        if table is not None:
            assert mtls is not None and mtls.code == table


_outcome = st.builds(lambda probe, vs: ProbeOutcome(probe, ProbeStatus.OK, 0.0, tuple(v.finding for v in vs)),
                     st.sampled_from(list(PROBES)), st.lists(st.sampled_from(VARIANTS), max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(_outcome, max_size=4))
def test_mixes_never_re_label_a_specific_finding(outcomes: list[ProbeOutcome]) -> None:
    # Given any mix of real probe findings across probes, When diagnosed
    hints = diagnose(outcomes)
    # Then each catalogue finding is cited by a hint it may fold into (never lost, never re-labelled)
    for out in outcomes:
        for finding in out.findings:
            if hint_code(finding.code) is None:
                continue
            line = evidence_line(out.probe, finding)
            citing = [h.code for h in hints if line in h.evidence]
            assert citing, f"{finding.code} lost"
            assert any(may_fold(finding.code, c) for c in citing), f"{finding.code} re-labelled as {citing}"
