# The two commands of the README, and the checks. Each target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint docs bench clean report-screenshot

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: a perfbench perf run on the built-in simulated engine, then its report
run: $(STAMP)
	$(BIN)/perfbench perf --parallel 1 8 32 --number 10 80 320 --max-tokens 128 --warmup 4 --name demo

## make test: the test suite (and no import circles among perfbench's modules)
test: $(STAMP)
	$(BIN)/python scripts/import_cycles.py
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check perfbench tests benchmarks
	$(BIN)/ruff format --check perfbench tests benchmarks
	$(BIN)/mypy --strict perfbench

## make docs: regenerate docs/cli.md from the parser
docs: $(STAMP)
	$(BIN)/python scripts/make_cli_docs.py

check: lint test

## make bench: the client-overhead benchmark (minutes; not part of the tests)
bench: $(STAMP)
	$(BIN)/python benchmarks/client_overhead.py

## make report-screenshot: regenerate docs/img/html-report.png (needs chromium, chromium-driver)
report-screenshot: $(STAMP)
	$(BIN)/python scripts/make_report_screenshot.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
