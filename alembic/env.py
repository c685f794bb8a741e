"""Alembic environment: a thin shell.

``alembic upgrade/downgrade/stamp`` run through the same safety net as ``llm-proxy-db migrate``
(:mod:`llm_proxy_db.cli.alembic_env`); the revisions themselves run in
:mod:`llm_proxy_db.migration.environment`.
"""

from alembic import context
from llm_proxy_db.cli.alembic_env import run_alembic

run_alembic(context)
