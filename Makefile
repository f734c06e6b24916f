# The README's two commands: `make serve` (install, then start on embedded
# ClickHouse) and `make test` (install with test extras, then run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"

serve: install
	$(BIN)/ai-usage serve $(ARGS)

test: install-test
	$(BIN)/python -m pytest $(ARGS)
