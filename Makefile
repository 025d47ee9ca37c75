# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv lint test demo bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict daemon probes

# pytest exits 5 when it collected nothing: make treats that as a failure too.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The lab's exit code is its diagnosis: 1/2 mean it found the fault the scenario simulates, which
# is the demo working; only 3 (the lab could not run) fails `make demo`.
demo: $(STAMP)
	$(BIN)/rmxdiag lab $(DEMO_ARGS) || [ $$? -le 2 ]

bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
