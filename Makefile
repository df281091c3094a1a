# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint audit lock docs bench install clean

demo: install  ## set up, then run the whole system on this machine
	scripts/install-system-packages demo
	$(BIN)/watchtower demo

test: install  ## lint, audit the locked dependencies, then the test suite against real local servers
	scripts/install-system-packages test
	$(BIN)/ruff check .
	$(AUDIT)
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Known vulnerabilities in what the image ships and what development runs; bounded in time, and
# says NOT DONE (without failing) when the vulnerability service cannot be asked.
AUDIT = $(BIN)/python scripts/audit_dependencies.py $(AUDIT_FLAGS) requirements.lock requirements-dev.lock

audit: install  ## pip-audit over requirements*.lock (AUDIT_FLAGS=--strict: fail when not done)
	$(AUDIT)

# Pins with hashes for Python 3.11 on Linux, the image's. Existing pins are kept unless
# `make lock UPGRADE=--upgrade`; the Dockerfile installs requirements.lock and nothing else.
LOCK = UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile pyproject.toml --quiet \
	--generate-hashes --python-version 3.11 --python-platform linux $(UPGRADE)

lock: install  ## requirements.lock (runtime: server, legacy) and requirements-dev.lock (all extras)
	$(LOCK) --extra server --extra legacy --output-file requirements.lock
	$(LOCK) --all-extras --output-file requirements-dev.lock

docs: install  ## docs/configuration.md from the settings objects
	$(BIN)/python scripts/configuration_docs.py

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
