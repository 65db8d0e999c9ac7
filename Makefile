# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-ui test-distributed lint ui validate bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/casbusi demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile
	$(BIN)/dg check defs --use-active-venv 2>/dev/null || $(BIN)/dg check defs
	$(MAKE) test-ui
	$(MAKE) test-distributed

# The Dagster UI in headless Chromium: Debian's package, installed here when missing.
test-ui: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	CASBUSI_SCREENSHOT_DIR=$(CURDIR)/docs $(BIN)/python -m pytest -m browser -p no:cacheprovider casbusi_assets_tests/ui

# Two batches on Celery workers with the instance on a throwaway Postgres, Redis on loopback, and
# the warehouse and files on s3:// served by moto on loopback (moto[server] and s3fs: test extra).
test-distributed: $(STAMP)
	command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade postgresql redis-server >/dev/null)
	$(BIN)/python -m pytest -m distributed -p no:cacheprovider casbusi_assets_tests/distributed

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: $(STAMP)
	$(BIN)/casbusi ui

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf casbusi_home .pytest_cache .ruff_cache
