# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

demo: install  ## set up, then run the whole system on this machine
	scripts/install-system-packages demo
	$(BIN)/watchtower demo

test: install  ## lint, then the test suite against real local servers
	scripts/install-system-packages test
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install  ## measured figures, each beside its baseline
	scripts/install-system-packages bench
	$(BIN)/python -m benchmarks

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
