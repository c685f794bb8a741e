"""Settings from the CLI's options and the environment, the server URL parsed by its dialect.

:mod:`llm_proxy_db.config.settings` holds the settings and the choices that need no dialect
(which driver, which URL text); parsing a ``DATABASE_URL`` is the dialect's
(``parse_database_url``: PostgreSQL URLs, MySQL URLs and Go DSNs), so resolving lives here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.masking import mask_connection_string
from llm_proxy_db.config.parsing import DIRECT_URL_ENV
from llm_proxy_db.config.secrets import secret_env
from llm_proxy_db.config.settings import (
    DEFAULT_DATABASE_PATH,
    SQLITE,
    Settings,
    chosen_driver,
    postgres_url_text,
    url_driver,
)
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def resolve_settings(
    db_driver: str | None = None,
    database_path: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    direct_url: str | None = None,
) -> Settings:
    """Build :class:`Settings` from explicit values, falling back to the environment.

    The driver is, in order: ``db_driver``; ``postgres`` for an explicit ``database_url``,
    ``sqlite`` for an explicit ``database_path``; ``DB_DRIVER``; ``sqlite``.  Explicit values
    that contradict each other are refused rather than one of them silently ignored.
    ``direct_url`` (else ``LLM_PROXY_DIRECT_URL``, or the file ``LLM_PROXY_DIRECT_URL_FILE``
    names) is the server URL schema changes use.
    """
    env = os.environ if env is None else env
    raw_url = postgres_url_text(db_driver, database_url, env, database_path=database_path)
    raw_direct = direct_url or (secret_env(DIRECT_URL_ENV, env) or "").strip() or None
    if raw_url is None:
        if raw_direct:
            raise ConfigError(
                f"{DIRECT_URL_ENV} / --direct-url is for a server database, but the driver is SQLite",
                hint=f"unset {DIRECT_URL_ENV}, or set DB_DRIVER and DATABASE_URL",
            )
        path = database_path or env.get("DATABASE_PATH") or DEFAULT_DATABASE_PATH
        return Settings(driver=SQLITE, database_path=Path(path).expanduser())
    driver = chosen_driver(db_driver, database_path, database_url, env)
    parse = dialect_for(driver).parse_database_url
    direct = _direct_url(driver, raw_direct, parse) if raw_direct else None
    return Settings(driver=driver, database_url=parse(raw_url), direct_url=direct)


def _direct_url(driver: str, raw: str, parse: Callable[[str], URL]) -> URL:
    """The direct URL, parsed like ``DATABASE_URL``; one of another database kind is refused."""
    if url_driver(raw) != driver:
        raise ConfigError(
            f"{DIRECT_URL_ENV} {mask_connection_string(raw)!r} is not a {driver} URL like DATABASE_URL",
            hint="give the direct address of the same database (the primary, not the pooler)",
        )
    try:
        return parse(raw)
    except ConfigError as exc:
        raise ConfigError(f"{DIRECT_URL_ENV}: {exc.message}", hint=exc.hint) from None
