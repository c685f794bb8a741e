"""Configuration: one resolver for env.py, the library and the CLI.

The names are the llm-proxy service's own (``DB_DRIVER``, ``DATABASE_PATH``,
``DATABASE_URL``).  Explicit arguments (the CLI's options) override the environment.
Every message that shows a URL uses :meth:`Settings.display_url`, which masks the password.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

from llm_proxy_db.config.masking import is_key_value, mask_connection_string
from llm_proxy_db.errors import ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported only where a URL is built or parsed (fast startup)
    from sqlalchemy.engine import URL


N = TypeVar("N", int, float)

SQLITE = "sqlite"
POSTGRES = "postgres"
MYSQL = "mysql"
DEFAULT_DATABASE_PATH = "data/llm-proxy.db"
# DB_DRIVER -> SQLAlchemy's dialect name (each dialect package's DRIVER and SQLALCHEMY_NAME).
SQLALCHEMY_NAMES = {SQLITE: "sqlite", POSTGRES: "postgresql", MYSQL: "mysql"}
_DRIVER_ALIASES = {
    "sqlite": SQLITE,
    "sqlite3": SQLITE,
    "postgres": POSTGRES,
    "postgresql": POSTGRES,
    "pg": POSTGRES,
    "mysql": MYSQL,
    "mariadb": MYSQL,
}


@dataclass(frozen=True)
class Settings:
    """Where the database is: a SQLite file, or a PostgreSQL or MySQL URL (already normalised)."""

    driver: str
    database_path: Path | None = None
    database_url: URL | None = None

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite default."""
        return self.driver == SQLITE

    @property
    def is_mysql(self) -> bool:
        """True for MySQL 8 and MariaDB (``DB_DRIVER=mysql``)."""
        return self.driver == MYSQL

    @property
    def dialect_name(self) -> str:
        """SQLAlchemy's name for the dialect: ``sqlite``, ``postgresql`` or ``mysql``."""
        return SQLALCHEMY_NAMES[self.driver]

    def known_missing(self) -> bool:
        """True when the database certainly does not exist yet (a SQLite path without a file):
        reads can answer "empty" without connecting (or creating anything).  A server database
        is taken to exist: connecting says otherwise, with a clear error."""
        return self.database_path is not None and not self.database_path.exists()

    def sqlalchemy_url(self) -> URL:
        """The URL SQLAlchemy connects with (psycopg 3 for PostgreSQL)."""
        from sqlalchemy.engine import URL

        if self.is_sqlite:
            assert self.database_path is not None
            return URL.create("sqlite", database=str(self.database_path))
        assert self.database_url is not None
        return self.database_url

    def display_url(self) -> str:
        """The URL for humans and logs: the password is always masked; names are shown as
        written (``données``, not ``donn%C3%A9es``)."""
        return unquote(self.sqlalchemy_url().render_as_string(hide_password=True))

    def describe(self) -> str:
        """A short description: the SQLite path or the masked server URL."""
        return str(self.database_path) if self.is_sqlite else self.display_url()


def postgres_url_text(
    db_driver: str | None = None,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    database_path: str | os.PathLike[str] | None = None,
) -> str | None:
    """The server URL (PostgreSQL or MySQL) as given, not parsed yet; None when the driver is SQLite.

    The same choice as :func:`llm_proxy_db.dialects.resolve.resolve_settings`, without importing SQLAlchemy (the startup
    check at head uses it).
    """
    env = os.environ if env is None else env
    driver = chosen_driver(db_driver, database_path, database_url, env)
    if driver == SQLITE:
        return None
    raw_url = database_url or env.get("DATABASE_URL")
    if not raw_url:
        example = "user:pass@tcp(host:3306)/db" if driver == MYSQL else "postgres://user@host:5432/db"
        raise ConfigError(
            f"DB_DRIVER is {driver} but no database URL is set",
            hint=f"set DATABASE_URL or pass --database-url {example}",
        )
    return raw_url


def chosen_driver(
    db_driver: str | None,
    database_path: str | os.PathLike[str] | None,
    database_url: str | None,
    env: Mapping[str, str],
) -> str:
    """The driver: explicit values first, then ``DB_DRIVER``, then SQLite."""
    explicit = _explicit_driver(db_driver, database_path, database_url)
    return normalise_driver(explicit or env.get("DB_DRIVER") or SQLITE)


def _explicit_driver(
    db_driver: str | None, database_path: str | os.PathLike[str] | None, database_url: str | None
) -> str | None:
    """The driver the explicit (command-line) values imply, refusing contradictions."""
    if database_path and database_url:
        raise ConfigError("both a SQLite path and a PostgreSQL URL were given", hint="give only one of them")
    implied = url_driver(database_url) if database_url else SQLITE if database_path else None
    if db_driver and implied and normalise_driver(db_driver) != implied:
        given = "--database-url" if database_url else "--database-path"
        raise ConfigError(f"{given} does not go with --db-driver {db_driver}", hint="drop one of the two")
    return db_driver or implied


def url_driver(database_url: str) -> str:
    """The driver a database URL implies: ``mysql`` for ``mysql://``, ``mariadb://`` and the Go
    driver's DSN form (``user:pass@tcp(host:3306)/db``), else ``postgres`` (a libpq
    ``key=value`` string too, which the PostgreSQL parser then refuses with its reason)."""
    text = database_url.strip().lower()
    scheme, sep, _ = text.partition("://")
    if sep:
        return MYSQL if scheme.split("+")[0] in ("mysql", "mariadb") else POSTGRES
    return POSTGRES if is_key_value(text) else MYSQL


def number_from_env(
    name: str, parse: Callable[[str], N], default: N, what: str, env: Mapping[str, str] | None = None
) -> N:
    """A finite number from the environment variable ``name`` (``default`` when unset or empty).

    Kept for callers outside :mod:`llm_proxy_db.config.parsing`, which owns the range checks
    of the settings it knows (``parse_seconds``, ``parse_count``): prefer those.
    """
    raw = (os.environ if env is None else env).get(name)
    if not raw or not raw.strip():
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not {what}", hint="use a finite number")
    return value


def normalise_driver(name: str) -> str:
    """Map a driver name (as the service spells it) to ``sqlite``, ``postgres`` or ``mysql``."""
    driver = _DRIVER_ALIASES.get(name.strip().lower())
    if driver is None:
        supported = "sqlite, postgres, mysql"
        raise ConfigError(f"unknown database driver {name!r}", hint=f"use one of: {supported}")
    return driver


def mask_url_text(text: str) -> str:
    """Mask the password field of a URL-like string that SQLAlchemy could not parse."""
    return mask_connection_string(text)
