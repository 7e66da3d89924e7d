# mtlskit: two commands on a fresh Debian machine with python3.
#   make demo   install into .venv, show the seed's whole flow working, keep the gateway up
#   make test   install with test extras, lint, and run the whole test suite on every
#               CPython 3.11+ on the machine (.venv, plus .venv-3.N for each other version)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo walkthrough test lint pytest pytest-one conformance clean

RUN_STAMP  := $(VENV)/.installed-run

# `make demo` installs only what mtlskit needs to run; `make test` adds the test extras.
$(RUN_STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) ./scripts/bootstrap.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) ./scripts/bootstrap.sh test
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

# The seed's flow on this machine: CA, gateway, three real calls; Ctrl-C stops the gateway.
demo: $(RUN_STAMP)
	$(BIN)/mtlskit demo $(DEMO_ARGS)

# The PKI alone, proven with openssl s_server and curl (needs both installed).
walkthrough: $(RUN_STAMP)
	./scripts/pki-walkthrough.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench scripts conformance
	$(BIN)/mypy

# Every CPython 3.11+ found (PATH, pyenv, /usr/bin), each in its own venv; names them.
pytest: $(STAMP)
	./scripts/test-pythons.sh

# Only .venv's Python (quicker, while developing).
pytest-one: $(STAMP)
	$(BIN)/pytest -q

test: lint pytest

# x509-limbo, all 9,780 cases, against our verifier (needs ../shared/limbo; ~10 s)
conformance: $(STAMP)
	$(BIN)/python conformance/limbo.py

clean:
	rm -rf $(VENV) $(VENV)-3.* .pytest_cache .mypy_cache .ruff_cache .demo
