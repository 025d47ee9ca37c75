"""The capture probe: TLS handshakes, alerts and SIP in pcap/pcapng files (via tshark).

This package module stays light (no pyshark): the registry asks it whether a target gives the
probe work; :mod:`probes.capture.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target

# Every finding code of this probe (SIP answers only with a key log).
FINDINGS = frozenset({
    "CAPTURE_TLS_ALERT", "CAPTURE_EMPTY_CLIENT_CERT", "CAPTURE_RESET_AFTER_CLIENT_CERT", "CAPTURE_NO_SERVER_RESPONSE",
    "CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_INCOMPLETE", "TLS_HANDSHAKE_FAILURE", "SIP_NOT_TRUSTED", "SIP_ERROR_RESPONSE",
    "CAPTURE_SUMMARY", "CAPTURE_NOTHING_TO_JUDGE", "TLS_PORT_NOT_TLS",
})


def applies_to(target: Target) -> bool:
    """A target with capture files, a capture directory or an interface."""
    return target.capture.configured


PROBE = LazyProbe("capture", applies_to, "probes.capture.probe", FINDINGS)
