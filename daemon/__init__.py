"""rmxdiag: diagnostics for the Polycom RMX <-> Microsoft Lync / Skype for Business MTLS link."""

# Kept literal (not importlib.metadata) so `rmxdiag --version` starts fast.
__version__ = "0.1.0"
