"""The MTLS probe: the RMX's own TLS handshake with the Front End, then a SIP OPTIONS.

This package module stays light: the registry asks it whether a target gives the probe work;
:mod:`probes.mtls.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target


def applies_to(target: Target) -> bool:
    """A target with at least one registrar."""
    return bool(target.registrars)


PROBE = LazyProbe("mtls", applies_to, "probes.mtls.probe")
