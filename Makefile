# Two commands set everything up on a fresh machine: `make run` and `make test`. They install
# the distribution flowengine-server (setup.cfg; it imports as flowengine) into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-browser test-cluster test-all lint install install-test bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

run: install
	$(BIN)/python -m flowengine

test: install-test
	$(BIN)/python -m pytest -q --ignore=tests/browser --ignore=tests/cluster

# Several real server processes sharing a throwaway PostgreSQL (tests/cluster/, about 90 s):
# apart from `make test` to keep it under five minutes; .ci/run runs all three.
test-cluster: install-test
	$(BIN)/python -m pytest -q tests/cluster

test-all: test test-cluster test-browser

# The dashboard's browser tests (Debian's headless /usr/bin/chromium, about 90 s): apart from
# `make test` to keep it quick; .ci/run runs both.
test-browser: install-test
	$(BIN)/python -m pytest -q tests/browser

# The linter and the type checker on flowengine/ (rules in pyproject.toml); zero findings.
lint: install-test
	$(BIN)/ruff check flowengine
	$(BIN)/mypy flowengine

bench: install-test
	$(BIN)/python -m bench

bench-quick: install-test
	$(BIN)/python -m bench --quick

# flowengine side by side with n8n (bench/peers/): downloads n8n and a Node.js for it from the
# npm registry into ~/.cache/flowengine-bench on first use; never run by CI or make test.
.PHONY: bench-peers
bench-peers: install-test
	$(BIN)/python -m bench.peers $(PEERS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

# Schemathesis (every check, every phase) against a live server from its own /openapi.json
# (fuzz/run.py). fuzz-quick is the bounded run for CI (about 45 s); both exit non-zero on any
# finding.
.PHONY: fuzz fuzz-quick
fuzz: install
	$(BIN)/python -m pip install --quiet schemathesis
	$(BIN)/python fuzz/run.py $(FUZZ_ARGS)

fuzz-quick: install
	$(BIN)/python -m pip install --quiet schemathesis
	$(BIN)/python fuzz/run.py --quick $(FUZZ_ARGS)
