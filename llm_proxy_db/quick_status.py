"""The startup check at head: one read with the plain driver, no Alembic, no revision graph.

A service (or ``llm-proxy-db migrate status``) starting against an up-to-date database needs
one fact: does the version table hold exactly the head revision?  Answering it must cost
about as much as a bare driver connect-and-select, so this module imports neither Alembic
nor SQLAlchemy: the head id is the ``head`` line of the committed checksum manifest (which
``migrate verify`` checks against the revision files) and the version table is read with
``sqlite3``, ``psycopg`` or ``pymysql`` directly (each dialect's ``read_versions``).

The check only ever answers "yes, at head" or "not sure": any other state (no database, no
version table, an older or unknown revision, a driver error) sends the caller down the full
path, which knows how to explain it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from llm_proxy_db.config.parsing import DIRECT_URL_ENV
from llm_proxy_db.config.secrets import secret_env
from llm_proxy_db.config.settings import chosen_driver
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.base import ADOPTION_TABLE, VERSION_QUERY  # noqa: F401 (the fast read's vocabulary)
from llm_proxy_db.migration import manifest
from llm_proxy_db.migration.manifest import manifest_head

if TYPE_CHECKING:
    from llm_proxy_db.config.settings import Settings

# ADOPTION_TABLE: an adopted database's status shows its adoption record, which the full path
# reads.  Each dialect's read_versions answers "(adopted)" for such a database unless
# adopted_ok.  VERSION_QUERY: what every dialect's read_versions runs (bench/startup.py times it).
# postgres://user[:password]@host[:port]/dbname and nothing else: no query, no escapes.
_PLAIN_URL = re.compile(
    r"(?:postgres|postgresql|postgresql\+psycopg)://(?P<user>[\w.-]+)(?P<password>:[^@/?#%:\s]*)?"
    r"@(?P<host>[\w.-]+)(?P<port>:\d+)?/(?P<database>[\w.-]+)"
)


def head_revision() -> str | None:
    """The head revision according to the checksum manifest; None when it cannot be read."""
    try:
        return _manifest_facts()[0]
    except Exception:  # noqa: BLE001 - a missing or broken manifest: the full path explains it
        return None


def at_head(settings: Settings, *, adopted_ok: bool = False) -> bool:
    """True when the database records exactly the head revision; False when unsure."""
    return current_head(settings, adopted_ok=adopted_ok) is not None


def current_head(settings: Settings, *, adopted_ok: bool = False) -> tuple[str, list[str]] | None:
    """(head, checksum warnings) when the database records exactly the head; else None.

    None also means "not sure" (no manifest, no database, a driver error) or, unless
    ``adopted_ok``, "adopted" (a status shows the adoption record, which the full path reads;
    a startup check does not need it).  The warnings are
    :func:`checksum_warnings` for the head.
    """
    try:
        head, files = _manifest_facts()
        rows = dialect_for(settings).read_versions(settings, adopted_ok)
    except Exception:  # noqa: BLE001 - any failure means "not sure": the full path explains it
        return None
    if head is None or rows != [head]:
        return None
    return head, _warnings(head, files)


def checksum_warnings(head: str) -> list[str]:
    """``manifest.check_applied(head)``, hashed again only when a revision file changed.

    A service may ask on every start or health check: the revision files and the manifest
    are compared by ``stat`` (name, size, mtime) first, which costs microseconds.  Strict
    mode still raises on every call.
    """
    return _warnings(head, _manifest_facts()[1])


_checked: dict[tuple[object, ...], list[str]] = {}
_head: dict[tuple[object, ...], str | None] = {}


def _warnings(head: str, files: tuple[object, ...]) -> list[str]:
    key = (head, manifest.strict_mode(), files)
    if key not in _checked:
        _checked.clear()
        _checked[key] = manifest.check_applied(head)
    return list(_checked[key])


def _manifest_facts() -> tuple[str | None, tuple[object, ...]]:
    """(the manifest's head, a stat signature of the revision files), read again on change."""
    directory = str(manifest.manifest_path().parent)
    with os.scandir(directory) as entries:
        files = tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries))
    key: tuple[object, ...] = (directory, files)
    if key not in _head:
        _head.clear()
        _head[key] = manifest_head(manifest.manifest_path())
    return _head[key], key


def plain_postgres_url(raw_url: str) -> tuple[str, str] | None:
    """For a plain PostgreSQL URL: (the libpq URL, its masked description); None for others.

    Parsing a URL with SQLAlchemy means importing it, which alone costs more than the whole
    check; the plain form is unambiguous for libpq and renders exactly as
    :meth:`Settings.describe` does (a test compares them).  Anything else goes through
    :class:`Settings`.
    """
    match = _PLAIN_URL.fullmatch(raw_url.strip())
    if match is None:
        return None
    user, password, host, port, database = match.group("user", "password", "host", "port", "database")
    masked = f"postgresql+psycopg://{user}{':***' if password else ''}@{host}{port or ''}/{database}"
    return f"postgresql://{user}{password or ''}@{host}{port or ''}/{database}", masked


def driver_chosen(options: Mapping[str, str]) -> str:
    """The driver the full path would choose for the global options (``db_driver``,
    ``database_path``, ``database_url``) and the environment."""
    given = options.get
    return chosen_driver(given("db_driver"), given("database_path"), given("database_url"), os.environ)


def plain_mysql_url(raw_url: str) -> tuple[dict[str, Any], str] | None:
    """For a plain MySQL ``DATABASE_URL`` (Go DSN or ``mysql://`` URL): (PyMySQL's connect
    arguments, its masked description), computed without SQLAlchemy as the full path would
    (:func:`llm_proxy_db.dialects.mysql.connection.plain_connect_args`); None for others."""
    from llm_proxy_db.dialects.mysql import connection  # only a MySQL start pays for this import: start-up time

    return connection.plain_connect_args(raw_url)


def direct_url_plain_or_absent(option: str | None, plain: Callable[[str], object | None] = plain_postgres_url) -> bool:
    """Whether the direct URL (``--direct-url``, else ``LLM_PROXY_DIRECT_URL[_FILE]``) is
    absent or plain (``plain``: :func:`plain_postgres_url`, :func:`plain_mysql_url`), which the
    full path accepts as it is; False for anything else, which the full path parses and may
    refuse (exit 2)."""
    try:
        raw = option or (secret_env(DIRECT_URL_ENV) or "").strip()
    except Exception:  # noqa: BLE001 - both variables set, an unreadable file: the full path explains
        return False
    return not raw or plain(raw) is not None


def postgres_url_at_head(raw_url: str, *, adopted_ok: bool = False) -> tuple[bool, str] | None:
    """For a plain PostgreSQL URL (:func:`plain_postgres_url`): (at head?, its masked
    description); None for other URLs."""
    plain = plain_postgres_url(raw_url)
    if plain is None:
        return None
    libpq, masked = plain
    from llm_proxy_db.dialects import postgresql  # only a PostgreSQL start pays for this import: start-up time

    head = head_revision()
    try:
        return head is not None and postgresql.read_versions_at(libpq, adopted_ok) == [head], masked
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return False, masked


def mysql_at_head(kwargs: dict[str, Any], *, adopted_ok: bool = False) -> bool:
    """For a plain MySQL URL (:func:`plain_mysql_url`'s connect arguments): at head?  False
    when unsure."""
    from llm_proxy_db.dialects.mysql import connection  # only a MySQL start pays for this import: start-up time

    head = head_revision()
    try:
        return head is not None and connection.read_versions_at(kwargs, adopted_ok) == [head]
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return False
