"""Connecting to PostgreSQL: the operator's URL, the engine, the fast startup read with bare psycopg."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from llm_proxy_db.config.masking import is_key_value, mask_connection_string
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.config.waits import wait_bound_ms
from llm_proxy_db.dialects.base import RUN_LOG_QUERY, RUN_LOG_TABLE, VERSION_QUERY
from llm_proxy_db.dialects.drivers import require_driver
from llm_proxy_db.dialects.postgresql.base import (
    _ADOPTED,
    _STANDBY,
    _TABLE_NAMES,
    DRIVER,
    DRIVER_PACKAGE,
    OFFLINE_URL,
    SQLALCHEMY_DRIVER,
    URL_SCHEMES,
)
from llm_proxy_db.dialects.postgresql.objects import RELATIONS_NAMED_SQL
from llm_proxy_db.dialects.postgresql.waits import bound_lock_waits
from llm_proxy_db.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine


def offline_settings() -> Settings:
    """Settings for offline (``--sql``) scripts, which connect to nothing."""
    return Settings(driver=DRIVER, database_url=parse_database_url(OFFLINE_URL))


def parse_database_url(raw_url: str) -> URL:
    """Accept ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://``; use psycopg 3.

    Like the service (Go's ``net/url``), the user information ends at the *last* ``@``, so a
    password holding an unencoded ``@`` still works; a ``?password=`` parameter becomes the
    URL's password, so it is masked and passed to client tools like any other password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if is_key_value(raw_url):
        raise ConfigError(
            f"DATABASE_URL {mask_connection_string(raw_url)!r} is a libpq key=value connection "
            "string; PostgreSQL needs the URL form, as the service does",
            hint="use postgres://user:password@host:5432/dbname?sslmode=... (percent-encode "
            "special characters of the password)",
        )
    try:
        url = make_url(_encode_userinfo(raw_url.strip()))
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"malformed database URL {mask_connection_string(raw_url)!r}",
            hint="expected postgres://user:password@host:5432/dbname",
        ) from None
    if url.drivername not in URL_SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {url.drivername!r} in {mask_connection_string(raw_url)!r}",
            hint="use postgres://, postgresql:// or postgresql+psycopg://",
        )
    url = _password_from_query(url)
    if not url.database:
        raise ConfigError(
            f"database URL {url.render_as_string()!r} names no database",
            hint="add the database name: postgres://user@host:5432/dbname",
        )
    return url.set(drivername=SQLALCHEMY_DRIVER)


def _encode_userinfo(text: str) -> str:
    """Percent-encode user and password when the user information holds a raw ``@``."""
    scheme, sep, rest = text.partition("://")
    userinfo, _, host = rest.rpartition("@")
    if not sep or "@" not in userinfo:
        return text
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{quote(unquote(user), safe='')}{colon}{quote(unquote(password), safe='')}@{host}"


def _password_from_query(url: URL) -> URL:
    if "password" not in url.query:
        return url
    password = url.query["password"]
    query = {key: value for key, value in url.query.items() if key != "password"}
    return url.set(password=password if isinstance(password, str) else password[-1], query=query)


def database_exists(settings: Settings) -> bool:
    """A server database is taken to exist: connecting says otherwise, with a clear error."""
    del settings
    return True


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """An engine without a pool (each command opens what it needs, once)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    del foreign_keys, create  # always on; a server database is never created here
    require_driver(*DRIVER_PACKAGE)
    # No server-side prepared statements: a pooler may sit in between (pooler.py).
    engine = sa.create_engine(
        settings.sqlalchemy_url(), poolclass=NullPool, connect_args={"prepare_threshold": None}
    )
    bound_lock_waits(engine)  # every read waits for a lock at most --lock-timeout
    return engine


def libpq_url(settings: Settings) -> str:
    """``settings``' URL for psycopg itself (password included: never print it)."""
    return settings.sqlalchemy_url().set(drivername="postgresql").render_as_string(hide_password=False)


def read_versions(settings: Settings, adopted_ok: bool) -> list[str]:
    """``alembic_version``'s rows with a bare psycopg connection; ``["(adopted)"]`` when adopted."""
    return read_versions_at(libpq_url(settings), adopted_ok)


def read_versions_at(libpq_url: str, adopted_ok: bool) -> list[str]:
    """:func:`read_versions` for a libpq URL (no SQLAlchemy needed to build it).

    For the start-up check (``adopted_ok``) a standby answers ``["(standby)"]``: the full path
    then refuses it (a service cannot start against a server that only reads).
    """
    require_driver(*DRIVER_PACKAGE)
    import psycopg  # only PostgreSQL users pay for importing it

    with psycopg.connect(libpq_url, autocommit=True, prepare_threshold=None) as connection, connection.transaction():
        # A session holding a lock on alembic_version is waited for at most --lock-timeout.
        connection.execute(f"SELECT set_config('lock_timeout', '{wait_bound_ms()}ms', true)")
        rows = [row[0] for row in connection.execute(VERSION_QUERY)]
        if not adopted_ok and connection.execute(_ADOPTED).fetchone() is not None:
            return ["(adopted)"]
        if adopted_ok and connection.execute(_STANDBY).fetchone() is not None:
            return ["(standby)"]
        return rows


def read_run_log(settings: Settings) -> list[tuple[Any, ...]]:
    """The run log's rows with a bare psycopg connection; [] without a log."""
    return read_run_log_at(libpq_url(settings))


def read_run_log_at(libpq_url: str) -> list[tuple[Any, ...]]:
    """:func:`read_run_log` for a libpq URL (no SQLAlchemy needed to build it)."""
    require_driver(*DRIVER_PACKAGE)
    import psycopg  # only PostgreSQL users pay for importing it

    with psycopg.connect(libpq_url, autocommit=True, prepare_threshold=None) as connection, connection.transaction():
        connection.execute(f"SELECT set_config('lock_timeout', '{wait_bound_ms()}ms', true)")
        if connection.execute(f"SELECT to_regclass('{RUN_LOG_TABLE}')").fetchone() in (None, (None,)):
            return []
        return [tuple(row) for row in connection.execute(RUN_LOG_QUERY)]


def read_tables(settings: Settings, names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The tables SQLAlchemy's ``get_table_names`` lists and
    :func:`~.objects.relations_named` for ``names``, with a bare psycopg connection."""
    return read_tables_at(libpq_url(settings), names)


def read_tables_at(libpq_url: str, names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """:func:`read_tables` for a libpq URL (no SQLAlchemy needed to build it)."""
    require_driver(*DRIVER_PACKAGE)
    import psycopg  # only PostgreSQL users pay for importing it

    with psycopg.connect(libpq_url, autocommit=True, prepare_threshold=None) as connection, connection.transaction():
        connection.execute(f"SELECT set_config('lock_timeout', '{wait_bound_ms()}ms', true)")
        tables = [str(row[0]) for row in connection.execute(_TABLE_NAMES)]
        kinds = connection.execute(RELATIONS_NAMED_SQL, {"names": list(names)})
        return tables, {str(name): str(kind) for name, kind in kinds}


def read_broken_references(settings: Settings) -> bool:
    """False: foreign keys stay on while migrating here; nothing for a run to refuse."""
    del settings
    return False

