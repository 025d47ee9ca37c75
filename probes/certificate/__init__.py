"""The certificate probe: load the RMX certificate in any form and judge it.

This package module stays light (no cryptography): the registry asks it whether a target gives
the probe work; :mod:`probes.certificate.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target


def applies_to(target: Target) -> bool:
    """A target with a configured certificate source."""
    return target.certificate is not None


PROBE = LazyProbe("certificate", applies_to, "probes.certificate.probe")
