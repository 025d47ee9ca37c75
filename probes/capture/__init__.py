"""The capture probe: TLS handshakes, alerts and SIP in pcap/pcapng files (via tshark).

This package module stays light (no pyshark): the registry asks it whether a target gives the
probe work; :mod:`probes.capture.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target


def applies_to(target: Target) -> bool:
    """A target with capture files, a capture directory or an interface."""
    return target.capture.configured


PROBE = LazyProbe("capture", applies_to, "probes.capture.probe")
