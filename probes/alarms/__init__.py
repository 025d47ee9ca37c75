"""The alarms probe: RMX alarms from reports, snmptrapd, syslog and the XML API."""
