# The one entry point for people and CI: `make test`, `make demo`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean help

help:
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make demo   - run a whole simulated hall on this machine and print what it counted"
	@echo "make bench  - run the ingest benchmark (prints one JSON line)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/hcp demo

bench: $(STAMP)
	$(BIN)/hcp bench ingest --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
