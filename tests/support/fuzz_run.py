"""Run one atheris harness of tests/support/fuzz_targets.py with the probes package instrumented.

``python -m tests.support.fuzz_run NAME [libFuzzer flags] [corpus dir]``. Only ``probes.*`` is
instrumented (coverage feedback where the parsers are), which keeps start-up to a second or two.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports(include=["probes"]):
    from tests.support import fuzz_targets

if __name__ == "__main__":
    fuzz_targets.main(sys.argv)
