"""Pure certificate analysis: injected clock, chain walk wording, leaf selection, request lint."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from daemon.lab import pki
from probes.certificate.chain import is_self_signed, key_matches, thumbprint, walk
from probes.certificate.checks import Policy, analyse
from probes.certificate.load import Material, is_pfx, split_leaf
from probes.certificate.request import lint_request
from probes.model import InputError, Severity
from tests.conftest import LabPKI


def _codes(material: Material, policy: Policy, now: dt.datetime) -> set[str]:
    return {f.code for f in analyse(material, policy, now) if f.severity is not Severity.INFO}


def _healthy(lab: LabPKI) -> Material:
    return Material("rmx.pem", "pem", leaf=lab.rmx.cert, chain=tuple(lab.rmx.chain), key=lab.rmx.key,
                    chain_supplied=True)


def test_injected_clock_drives_validity(lab_pki: LabPKI) -> None:
    # Given the healthy certificate and the policy of a deployment
    material, policy = _healthy(lab_pki), Policy(fqdn="rmx.lab.example", anchors=(lab_pki.root.cert,),
                                                 bundle_given=True)
    end = lab_pki.rmx.cert.not_valid_after_utc
    # Then the same certificate is fine today, expiring 10 days before the end, expired after it
    assert _codes(material, policy, end - dt.timedelta(days=100)) == set()
    assert _codes(material, policy, end - dt.timedelta(days=10)) == {"CERT_EXPIRING_SOON"}
    assert _codes(material, policy, end + dt.timedelta(days=1)) == {"CERT_EXPIRED"}
    # (before the start the lab CAs, issued at the same moment, are not valid yet either)
    early = _codes(material, policy, lab_pki.rmx.cert.not_valid_before_utc - dt.timedelta(hours=1))
    assert early == {"CERT_NOT_YET_VALID", "CERT_CHAIN_INCOMPLETE"}


def test_not_yet_valid_mentions_clock_skew(lab_pki: LabPKI) -> None:
    # Given a clock behind the certificate's start, Then the message points at NTP/skew
    early = lab_pki.rmx.cert.not_valid_before_utc - dt.timedelta(minutes=5)
    finding = next(f for f in analyse(_healthy(lab_pki), Policy(), early) if f.code == "CERT_NOT_YET_VALID")
    assert "clock skew" in finding.message and finding.evidence["not_before"].endswith("Z")


def test_expiry_threshold_is_configurable(lab_pki: LabPKI) -> None:
    # Given 20 days left, Then a 30-day threshold warns and a 7-day one does not
    now = lab_pki.rmx.cert.not_valid_after_utc - dt.timedelta(days=20)
    assert "CERT_EXPIRING_SOON" in _codes(_healthy(lab_pki), Policy(expiry_warning_days=30), now)
    assert "CERT_EXPIRING_SOON" not in _codes(_healthy(lab_pki), Policy(expiry_warning_days=7), now)


def test_walk_names_missing_intermediate_and_untrusted_root(lab_pki: LabPKI) -> None:
    now = dt.datetime.now(dt.UTC)
    # Given a chain without the intermediate, Then the intermediate is named
    _path, problems = walk(lab_pki.rmx.cert, [lab_pki.root.cert], [], bundle_given=False, chain_supplied=True,
                           now=now)
    assert problems == ["issuing CA 'rmxdiag Lab Issuing CA' (issuer of 'rmx.lab.example') is not in the chain "
                        "you supplied"]
    # Given a full chain but an unrelated trusted root, Then the root is named
    path, problems = walk(lab_pki.rmx.cert, list(lab_pki.rmx.chain), [lab_pki.other_root.cert], bundle_given=True,
                          chain_supplied=True, now=now)
    assert [c.subject for c in path] == [lab_pki.rmx.cert.subject, lab_pki.issuing.cert.subject,
                                         lab_pki.root.cert.subject]
    assert problems == [f"root 'rmxdiag Lab Root CA' (SHA-1 {thumbprint(lab_pki.root.cert)}) is not in the Front End's "
                        "trust anchors (--fe-trust): the Front End does not trust it"]


def test_walk_flags_intermediate_found_only_in_bundle(lab_pki: LabPKI) -> None:
    # Given a supplied chain with the root only, and the intermediate only in the Front End bundle
    _path, problems = walk(lab_pki.rmx.cert, [lab_pki.root.cert], [lab_pki.root.cert, lab_pki.issuing.cert],
                           bundle_given=True, chain_supplied=True, now=dt.datetime.now(dt.UTC))
    # Then the RMX is told it must hold the intermediate itself
    assert len(problems) == 1 and "intermediate 'rmxdiag Lab Issuing CA' is not in the chain you supplied" in \
        problems[0]


def test_walk_flags_expired_intermediate(lab_pki: LabPKI) -> None:
    # Given a clock after the intermediate's end (but the walk judged there)
    later = lab_pki.issuing.cert.not_valid_after_utc + dt.timedelta(days=1)
    _path, problems = walk(lab_pki.rmx.cert, list(lab_pki.rmx.chain), [], bundle_given=False, chain_supplied=True,
                           now=later)
    assert any(p.startswith("intermediate 'rmxdiag Lab Issuing CA' expired on") for p in problems)


def test_self_signed_sha1_is_recognised_with_the_public_key() -> None:
    # Given the SHA-1 factory certificate (cryptography's issued-by check refuses SHA-1)
    factory = pki.factory_self_signed()
    # Then it is still recognised as self-signed, and an issued leaf is not
    assert is_self_signed(factory.cert)
    assert not is_self_signed(pki.issue(pki.name("x"), pki.root_ca()).cert)


def test_split_leaf_picks_the_key_owner_and_orders_cas(lab_pki: LabPKI) -> None:
    # Given a shuffled bag (root, leaf, intermediate) and the leaf's key
    leaf, cas, others = split_leaf([lab_pki.root.cert, lab_pki.rmx.cert, lab_pki.issuing.cert], lab_pki.rmx.key)
    # Then the leaf is the end-entity certificate and the CAs come nearest first
    assert leaf == lab_pki.rmx.cert and others == []
    assert cas == [lab_pki.issuing.cert, lab_pki.root.cert]


def test_is_pfx_recognises_pkcs12_only(lab_pki: LabPKI) -> None:
    # Given a PFX and a DER certificate, Then only the PFX is recognised
    assert is_pfx(lab_pki.rmx.pfx(b"x"))
    assert not is_pfx(pki.der(lab_pki.rmx.cert))
    assert not is_pfx(b"\x30\x03\x02\x01\x03")


def test_ec_key_is_flagged_for_lync(lab_pki: LabPKI) -> None:
    # Given an ECDSA leaf, Then CERT_WEAK_KEY (Lync 2013 / the RMX expect RSA) and a signature warning
    ec_leaf = pki.issue(pki.name("rmx.lab.example"), lab_pki.issuing, key=pki.new_key("ec"),
                        cdp=["http://127.0.0.1:9/x.crl"])
    codes = _codes(Material("ec.pem", "pem", leaf=ec_leaf.cert, chain=tuple(ec_leaf.chain), chain_supplied=True),
                   Policy(), dt.datetime.now(dt.UTC))
    assert codes == {"CERT_WEAK_KEY"}


def test_no_chain_and_no_bundle_is_a_note_not_a_problem(lab_pki: LabPKI) -> None:
    # Given a bare certificate, Then the chain is reported as not checked (info only)
    found = analyse(Material("bare.pem", "pem", leaf=lab_pki.rmx.cert), Policy(), dt.datetime.now(dt.UTC))
    assert {f.code for f in found} == {"CERT_SUMMARY", "CERT_CHAIN_UNCHECKED"}
    summary = next(f for f in found if f.code == "CERT_SUMMARY").evidence
    assert summary["issuer"] == lab_pki.issuing.cert.subject.rfc4514_string()
    assert summary["ekus"] == ["serverAuth", "clientAuth"] and summary["key_bits"] == 2048
    assert summary["not_after"].endswith("Z") and summary["cdp_urls"] == ["http://127.0.0.1:9/lab.crl"]


def test_request_with_edited_signature_is_input_error(tmp_path: Path) -> None:
    # Given a request whose signature bytes were altered
    from cryptography import x509

    request = pki.csr("rmx.lab.example")
    der = bytearray(pki.der(request))
    der[-5] ^= 0xFF
    edited = x509.load_der_x509_csr(bytes(der))
    # Then the lint refuses it as corrupt, naming the file
    with pytest.raises(InputError, match=r"^req\.der: the request's signature does not verify"):
        lint_request(edited, Policy(), "req.der")


def test_one_key_comparison_serves_leaf_choice_and_mismatch(lab_pki: LabPKI) -> None:
    # Given the RMX certificate, its key, and another end-entity certificate with its own key
    other = pki.issue(pki.name("other.lab.example"), lab_pki.root, key=pki.new_key("ec"))
    # Then the key matches its own certificate only
    assert key_matches(lab_pki.rmx.cert, lab_pki.rmx.key) and not key_matches(other.cert, lab_pki.rmx.key)
    # And a bag of both picks the certificate of the key given as the leaf, the other as an extra
    leaf, _, others = split_leaf([other.cert, lab_pki.rmx.cert], lab_pki.rmx.key)
    assert leaf == lab_pki.rmx.cert and others == [other.cert]
    # And the checks call a foreign key a mismatch
    wrong = Material("rmx.pem", "pem", leaf=lab_pki.rmx.cert, key=other.key)
    assert "CERT_KEY_MISMATCH" in _codes(wrong, Policy(), dt.datetime.now(dt.UTC))
