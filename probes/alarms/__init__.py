"""The alarms probe: RMX alarms from reports, snmptrapd, syslog and the XML API.

This package module stays light: the registry asks it whether a target gives the probe work;
:mod:`probes.alarms.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target

# Every finding code of this probe: the two alarm hints and the informational categories.
FINDINGS = frozenset({"RMX_ALARM_REGISTRATION", "RMX_ALARM_CERTIFICATE", "ALARMS_ICE", "ALARMS_REVOCATION",
                      "ALARMS_XML_API", "ALARMS_SKIPPED", "ALARMS_NOTHING_TO_JUDGE"})


def applies_to(target: Target) -> bool:
    """A target with at least one alarm source."""
    return target.alarms.configured


PROBE = LazyProbe("alarms", applies_to, "probes.alarms.probe", FINDINGS)
