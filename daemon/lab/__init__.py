"""The embedded lab: a generated PKI, a simulated Front End, scenarios and a demo capture."""
