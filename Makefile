# The README's two commands: `make serve` (install, then start on embedded
# ClickHouse) and `make test` (install with test extras, then run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install install-test bench

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

# Ingest throughput and analytics latency of the real service (about an hour
# with the default sizes); prints the table and writes it into README.md.
bench: install-test
	$(BIN)/python -m bench $(ARGS)
