"""The database drivers are optional extras: a missing one is a configuration error, not a crash.

``pip install llm-proxy-db`` runs SQLite only (Python's own ``sqlite3``); PostgreSQL needs
``llm-proxy-db[postgres]`` (psycopg 3) and MySQL/MariaDB ``llm-proxy-db[mysql]`` (PyMySQL).
Each server dialect calls :func:`require_driver` before it opens anything, so choosing a
database whose driver is not installed ends in one ``Error:`` naming the extra, exit 2.
"""

from __future__ import annotations

import importlib.util

from llm_proxy_db.errors import ConfigError


def require_driver(module: str, database: str, extra: str) -> None:
    """Refuse (exit 2) when the driver ``module`` for ``database`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{database} needs the {module} driver, which is not installed",
            hint=f"pip install 'llm-proxy-db[{extra}]' (or pip install {module} into the same environment)",
        )
