"""Settings from the CLI's options and the environment, the server URL parsed by its dialect.

:mod:`llm_proxy_db.config.settings` holds the settings and the choices that need no dialect
(which driver, which URL text); parsing a ``DATABASE_URL`` is the dialect's
(``parse_database_url``: PostgreSQL URLs, MySQL URLs and Go DSNs), so resolving lives here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llm_proxy_db.config.settings import (
    DEFAULT_DATABASE_PATH,
    SQLITE,
    Settings,
    chosen_driver,
    postgres_url_text,
)
from llm_proxy_db.dialects import dialect_for


def resolve_settings(
    db_driver: str | None = None,
    database_path: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from explicit values, falling back to the environment.

    The driver is, in order: ``db_driver``; ``postgres`` for an explicit ``database_url``,
    ``sqlite`` for an explicit ``database_path``; ``DB_DRIVER``; ``sqlite``.  Explicit values
    that contradict each other are refused rather than one of them silently ignored.
    """
    env = os.environ if env is None else env
    raw_url = postgres_url_text(db_driver, database_url, env, database_path=database_path)
    if raw_url is None:
        path = database_path or env.get("DATABASE_PATH") or DEFAULT_DATABASE_PATH
        return Settings(driver=SQLITE, database_path=Path(path).expanduser())
    driver = chosen_driver(db_driver, database_path, database_url, env)
    return Settings(driver=driver, database_url=dialect_for(driver).parse_database_url(raw_url))
