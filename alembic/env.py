"""Alembic environment: a thin shell; the behaviour lives in llm_proxy_db.environment."""

from alembic import context
from llm_proxy_db.environment import run_environment

run_environment(context)
