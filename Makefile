# The two commands of the README, plus the developer's helpers.  Every target bootstraps
# its own virtualenv (.venv) with the project and its test dependencies.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PG_TEST_URL ?= $(LLM_PROXY_TEST_POSTGRES_URL)
MYSQL_TEST_URL ?= $(LLM_PROXY_TEST_MYSQL_URL)

.PHONY: run test lint typecheck verify clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

## run: bring the default SQLite database (data/llm-proxy.db, or $DATABASE_PATH) to head and show its status
run: $(STAMP)
	$(BIN)/llm-proxy setup
	$(BIN)/llm-proxy migrate status

## test: the whole test suite against real databases, coverage >= 90%
test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --cov=llm_proxy_db --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

## verify: migrate verify (chain, manifest, base->head->base->head, drift, offline SQL); PostgreSQL / MySQL too when LLM_PROXY_TEST_POSTGRES_URL / LLM_PROXY_TEST_MYSQL_URL is set
verify: $(STAMP)
	$(BIN)/llm-proxy migrate verify $(if $(PG_TEST_URL),--postgres-url $(PG_TEST_URL)) $(if $(MYSQL_TEST_URL),--mysql-url $(MYSQL_TEST_URL))

lint: $(STAMP)
	$(BIN)/ruff check llm_proxy_db tests alembic

typecheck: $(STAMP)
	$(BIN)/mypy llm_proxy_db

include bench/Makefile.inc

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov
