# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint audit lock docs bench install check-upgrades clean

demo: install  ## set up, then run the whole system on this machine
	scripts/install-system-packages demo
	$(BIN)/watchtower demo

# Test files run on four workers (pytest-xdist, one file per worker at a time: a module's
# fixtures, such as the demo's one process, stay on one worker). Files with slow tests are handed
# out first (tests/conftest.py; --no-loadscope-reorder keeps that order, where xdist would put
# the files with the most tests first and the long one-test files last). Most of the suite waits
# on real servers, so four workers on two cores finish far sooner than one (about 1.7 cores
# busy). The tests marked `timed` hold real servers to the clock (a result in every 2 s slot, a
# fault seen within seconds): they run after the rest, three files at a time, each file with its
# own sandbox. PYTEST_FLAGS= TIMED_FLAGS= runs all serially.
PYTEST_FLAGS ?= -n 4 --dist loadfile --no-loadscope-reorder
TIMED_FLAGS ?= -n 3 --dist loadfile --no-loadscope-reorder

test: install  ## lint, audit the locked dependencies, then the test suite against real local servers
	scripts/install-system-packages test
	$(BIN)/ruff check .
	$(AUDIT)
	$(BIN)/pytest $(PYTEST_FLAGS) -m "not timed"
	$(BIN)/pytest $(TIMED_FLAGS) -m timed

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

# Needs only uv (pinned in requirements-dev.lock), not an up-to-date install: a dependency just
# added to pyproject.toml is not in the lock yet, which is what this target is for.
lock:  ## requirements.lock (runtime: server, legacy) and requirements-dev.lock (all extras)
	test -x $(BIN)/uv || { test -d $(VENV) || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/pip install -q --require-hashes --no-deps -r requirements-dev.lock; }
	$(LOCK) --extra server --extra legacy --output-file requirements.lock
	$(LOCK) --all-extras --output-file requirements-dev.lock

docs: install  ## docs/configuration.md from the settings objects
	$(BIN)/python scripts/configuration_docs.py

bench: install  ## measured figures, each beside its baseline
	scripts/install-system-packages bench
	$(BIN)/python -m benchmarks

install: $(STAMP)

# Exactly what requirements-dev.lock pins, each download checked against its hash, then the
# project itself without dependencies: a fresh machine gets what CI passed with, not whatever was
# published since. The pins move only through `make lock` (UPGRADE=--upgrade to take new releases).
# --no-compile: Python compiles what is imported when it is first imported, not every module of
# every package up front (a third of the install's time on a clean clone).
$(STAMP): requirements-dev.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps --no-compile \
	  -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

# What the newest releases the ranges in pyproject.toml allow would break: a throwaway venv
# resolved afresh (not from the locks), the test suite run there, a summary of what differs from
# the locks and which tests failed. Nothing in the repository changes.
check-upgrades: install  ## the test suite against the newest versions pyproject.toml allows
	scripts/install-system-packages test
	$(BIN)/python scripts/check_upgrades.py $(CHECK_UPGRADES_FLAGS)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
