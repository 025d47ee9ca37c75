# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs only the product; the tests add their tools (ruff, mypy, pytest, hypothesis).
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: venv lint test demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

venv: $(TEST_STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict daemon probes

# pytest exits 5 when it collected nothing: make treats that as a failure too.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The lab's exit code is its diagnosis: 1/2 mean it found the fault the scenario simulates, which
# is the demo working; only 3 (the lab could not run) fails `make demo`.
demo: $(RUN_STAMP)
	$(BIN)/rmxdiag lab $(DEMO_ARGS) || [ $$? -le 2 ]

bench: $(TEST_STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
