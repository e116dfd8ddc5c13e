# The one entry point for people and CI: `make test`, `make demo`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench clean help

help:
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make lint   - ruff (style, likely bugs) and mypy (types) over the code"
	@echo "make demo   - run a whole simulated hall on this machine and print what it counted"
	@echo "make bench  - run the ingest benchmark (prints one JSON line)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Tests run in parallel workers, one test file each at a time (--dist loadfile: a file's module
# fixtures, such as its browser, are started once): one more worker than cores, because most
# tests wait on processes they started. TEST_JOBS=0 runs them one by one. Then the tests marked
# `serial` (the firmware's, under real MicroPython: tests/firmware/conftest.py) run alone. Exit code 5: a pass that PYTEST_ARGS
# left without tests.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile -m "not serial" $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

# mypy sees the folders under the names they install as (haochaping.daemon, ...) through links in
# .lint/src; its messages are given back with the repository's own paths.
LINKS := daemon tools hardware protocol firmware
lint: $(STAMP)
	$(BIN)/ruff check .
	@mkdir -p .lint/src/haochaping && touch .lint/src/haochaping/__init__.py
	@for p in $(LINKS); do ln -sfn ../../../$$p .lint/src/haochaping/$$p; done
	@set -o pipefail; $(BIN)/mypy -p haochaping.daemon -p haochaping.tools -p haochaping.hardware \
	  | sed 's#^\.lint/src/haochaping/##'

demo: $(STAMP)
	$(BIN)/hcp demo

bench: $(STAMP)
	$(BIN)/hcp bench ingest --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .lint
