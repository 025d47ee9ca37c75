# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Lint, type and test tools are pinned here, so `make test` means the same thing next month.
CONSTRAINTS := .ci/constraints.txt
# -qq: pip's warnings (a local index configuration, setuptools' editable-install banner) are not
# the first screen a newcomer sees; its errors still print.
PIP_INSTALL := $(BIN)/pip install -qq --constraint $(CONSTRAINTS)
# The demo needs only the product; the tests add their tools (ruff, mypy, pytest, hypothesis, atheris).
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: peers venv lint test demo bench clean

# The Debian programs the tests start (.ci/debian-packages.txt): a no-op when all are installed;
# installs the missing ones as root (or with passwordless sudo); else prints the install command
# and the tests of a missing peer skip (in CI, CI=true, they fail).
peers:
	@$(PY) tests/support/debian.py ensure

$(BIN)/python:
	@echo "rmxdiag: creating $(VENV) (Python virtual environment; once, about a minute)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "rmxdiag: installing rmxdiag into $(VENV)"
	$(BIN)/pip install -qq -e .
	touch $(RUN_STAMP)

# atheris (the fuzz extra) has wheels for few platforms (x86_64 Linux CPython among them): where
# none exists it is left out and the fuzz tests skip (in CI they fail).
$(TEST_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	@echo "rmxdiag: installing rmxdiag and its test tools (ruff, mypy, pytest, ...) into $(VENV)"
	$(PIP_INSTALL) --only-binary atheris -e '.[test,fuzz]' \
		|| { echo "rmxdiag: no atheris wheel here: installing without the fuzz extra (the fuzz tests skip)"; \
		     $(PIP_INSTALL) -e '.[test]'; }
	touch $(TEST_STAMP) $(RUN_STAMP)

venv: $(TEST_STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict daemon probes

# pytest exits 5 when it collected nothing: make treats that (any non-zero exit) as a failure.
test: peers lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The lab's exit code is its diagnosis: 1/2 mean it found the fault the scenario simulates, which
# is the demo working; only 3 (the lab could not run) fails `make demo`.
demo: $(RUN_STAMP)
	$(BIN)/rmxdiag lab $(DEMO_ARGS) || [ $$? -le 2 ]
	@echo "The command is $(BIN)/rmxdiag: run '. $(VENV)/bin/activate' to call it as rmxdiag (as above and in the README)."

bench: $(TEST_STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
