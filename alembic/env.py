"""Alembic environment: a thin shell; the behaviour lives in llm_proxy_db.migration.environment."""

from alembic import context
from llm_proxy_db.migration.environment import run_environment

run_environment(context)
