"""Properties of the diagnosis over arbitrary mixes of findings (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.diagnosis.catalogue import CATALOGUE, Firmware
from daemon.diagnosis.diagnose import diagnose, evidence_line
from probes.model import Facts, Finding, ProbeOutcome, ProbeStatus, Severity
from probes.tlswire import Alert, Sender

PROBES = ("certificate", "mtls", "alarms", "capture")
CODES = [*sorted(CATALOGUE), "MTLS_OK", "CERT_SUMMARY", "CAPTURE_SUMMARY", "ALARMS_ICE"]

evidence = st.fixed_dictionaries({}, optional={
    "alert": st.sampled_from([40, 42, 43, 45, 46, 48, 51, 70, 71, 80, 116]),
    "direction": st.sampled_from(["from_fe", "from_rmx"]),
    "reason": st.sampled_from(["reset_after_client_cert", "closed_after_client_cert", "reset", "ok"]),
    "ms_diagnostics": st.lists(st.fixed_dictionaries({"id": st.sampled_from([1010, 1013, 1047, 4005])}),
                               max_size=2),
    "issuer": st.sampled_from(["CN=A", "CN=B"]),
    "ca_names": st.lists(st.sampled_from(["CN=A", "CN=B", "CN=C"]), max_size=3),
    "sip_status": st.sampled_from([200, 403, 500]),
})
names = st.sampled_from([b"\x30\x00", b"\x30\x02\x31\x00"])
alerts = st.builds(Alert, st.sampled_from([40, 42, 43, 45, 46, 48, 51, 70, 71, 80, 116]), st.sampled_from(list(Sender)))
facts = st.builds(Facts, alert=st.none() | alerts,
                  after_client_cert=st.booleans(), dropped_after_client_cert=st.booleans(),
                  rmx_issuer=st.none() | names, ca_list=st.none() | st.lists(names, max_size=2).map(tuple),
                  ms_diagnostics=st.lists(st.sampled_from([1010, 1013, 1047, 4005]), max_size=2).map(tuple))
finding = st.builds(Finding, st.sampled_from(CODES), st.sampled_from(list(Severity)), st.text(max_size=20),
                    evidence, facts)
outcome = st.builds(lambda probe, findings: ProbeOutcome(probe, ProbeStatus.OK, 0.0, tuple(findings)),
                    st.sampled_from(PROBES), st.lists(finding, max_size=6))


@settings(max_examples=400, deadline=None)
@given(st.lists(outcome, max_size=4), st.sampled_from(list(Firmware)))
def test_one_hint_per_code_and_no_evidence_lost(outcomes: list[ProbeOutcome], firmware: Firmware) -> None:
    # Given any mix of findings from the four probes, When diagnosed
    hints = diagnose(outcomes, firmware)
    # Then each code appears at most once, every hint is a catalogue code with fix steps
    codes = [h.code for h in hints]
    assert len(codes) == len(set(codes)) and all(c in CATALOGUE and h.remediation for c, h in zip(codes, hints,
                                                                                                  strict=True))
    # And every catalogue finding is cited as evidence by some hint (nothing silently dropped)
    cited = {line for h in hints for line in h.evidence}
    for out in outcomes:
        for f in out.findings:
            if f.code in CATALOGUE:
                assert evidence_line(out.probe, f) in cited, f
    # And the hints are ordered most severe first
    assert [h.severity.rank for h in hints] == sorted((h.severity.rank for h in hints), reverse=True)
