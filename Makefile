# mtlskit: two commands on a fresh Debian machine with python3.
#   make demo   install into .venv and show the chain of trust working
#   make test   install with test extras and run lint + the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint pytest conformance clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) ./scripts/bootstrap.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	./scripts/pki-walkthrough.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint pytest

# x509-limbo, all 9,780 cases, against our verifier (needs ../shared/limbo; ~10 s)
conformance: $(STAMP)
	$(BIN)/python conformance/limbo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
