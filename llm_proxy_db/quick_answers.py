"""``migrate history``, ``log``, ``adopt --dry-run``, ``rehearse`` and ``manifest`` at head, fast.

Answered without Alembic or SQLAlchemy.

Like :mod:`llm_proxy_db.quick_status`, each function here answers only when it is sure and
returns None otherwise, so the caller (:mod:`llm_proxy_db.cli.fast_path`) runs the full
command, which explains whatever is unusual:

- the chain comes from :func:`~llm_proxy_db.migration.released_chain.released_chain` (every
  revision file exactly as released, per the checksum manifest);
- the database must record exactly that chain's head (one bare-driver read, adoption
  allowed: neither command shows it);
- the run log is read with the bare driver (each dialect's ``read_run_log``) and turned into
  the same :class:`~llm_proxy_db.migration.run_log_entry.Entry` objects; a value of a shape
  SQLAlchemy would not have produced sends the command down the full path;
- ``adopt --dry-run``: a database at head is "versioned, nothing to do", and the plan shows
  only the tables that are not the service's (SQLAlchemy's ``get_table_names``, read bare).
  Anything under one of the service's table names that is not a plain table (a view, a
  sequence, a virtual table: what adoption's relation-kind detection looks at), one of those
  tables missing, or the marker of an unfinished operation (which adoption refuses) is
  unusual: the full path answers;
- ``rehearse``: at head the full path makes no copy (:mod:`llm_proxy_db.safety.rehearse`):
  it refuses a transaction pooler, a server that only reads (``safety.topology``) and, on
  SQLite, rows breaking a foreign key.  Answered here only where a bare read proves none of
  them (the dialect's ``surely_writable``: PostgreSQL's pooler probe and standby read,
  SQLite; MySQL's topology is read through SQLAlchemy, so never), without a direct URL
  (``--direct-url`` / ``LLM_PROXY_DIRECT_URL[_FILE]``: the full path reads that one).

``tests/test_fast_commands.py`` compares every output with the full path's, byte for byte,
on SQLite, PostgreSQL and MySQL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llm_proxy_db import quick_status
from llm_proxy_db.adoption.known_state_files import stale_files
from llm_proxy_db.adoption.plans import VERSIONED, AdoptionPlan, AdoptionResult, Detection
from llm_proxy_db.config.parsing import DIRECT_URL_ENV
from llm_proxy_db.config.settings import MYSQL, POSTGRES, postgres_url_text
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.dialects.unfinished import UNFINISHED_TABLE
from llm_proxy_db.migration.released_chain import ReleasedChain, released_chain
from llm_proxy_db.migration.revision_info import RevisionState
from llm_proxy_db.migration.run_log_entry import Entry, applied_at
from llm_proxy_db.safety.rehearsal_result import RehearsalResult
from llm_proxy_db.schema.fingerprint import OUR_TABLES, TOOL_BOOKKEEPING, Fingerprint

# SQLAlchemy's storage format for DateTime on SQLite (microseconds always written).
_SQLITE_DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?")
_SQLALCHEMY_VERSION = re.compile(r"^__version__\s*=\s*['\"](\d+)\.(\d+)[^'\"]*['\"]", re.MULTILINE)


@dataclass(frozen=True)
class Reader:
    """The configured database, read with its bare driver: what the fast answers need."""

    description: str
    versions: Callable[[], list[str]]
    run_log: Callable[[], list[tuple[Any, ...]]]
    #: (SQLAlchemy's table names, ``relations_named(OUR_TABLES)``)
    tables: Callable[[], tuple[list[str], dict[str, str]]]
    broken_references: Callable[[], bool]
    #: True when the full path's topology checks surely pass (no pooler, no standby)
    writable: Callable[[], bool]
    direct_url: bool = False


def reader(options: dict[str, str]) -> Reader:
    """A reader for the global options (``db_driver``, ``database_path``, ``database_url``).

    A plain PostgreSQL URL is read without building SQLAlchemy settings, as the status
    fast path does (:func:`quick_status.plain_postgres_url`).
    """
    raw_url = postgres_url_text(
        options.get("db_driver"), options.get("database_url"), database_path=options.get("database_path")
    )
    driver = quick_status.driver_chosen(options) if raw_url else None
    plain = quick_status.plain_postgres_url(raw_url) if raw_url and driver == POSTGRES else None
    if plain is not None:
        if not quick_status.direct_url_plain_or_absent(options.get("direct_url")):
            raise ValueError("a direct URL the full path parses (and may refuse)")
        from llm_proxy_db.dialects import postgresql  # only a PostgreSQL run pays for this import: start-up time

        libpq, masked = plain
        port = urlsplit(libpq).port or 5432
        return Reader(
            masked, lambda: postgresql.read_versions_at(libpq, True), lambda: postgresql.read_run_log_at(libpq),
            lambda: postgresql.read_tables_at(libpq, OUR_TABLES), lambda: False,
            lambda: postgresql.surely_writable_at(libpq, port), direct_url=_direct_url_given(options),
        )
    mysql = quick_status.plain_mysql_url(raw_url) if raw_url and driver == MYSQL else None
    if mysql is not None:
        if not quick_status.direct_url_plain_or_absent(options.get("direct_url"), quick_status.plain_mysql_url):
            raise ValueError("a direct URL the full path parses (and may refuse)")
        from llm_proxy_db.dialects.mysql import (  # only a MySQL run pays for these imports: start-up time
            connection,
            writable,
        )

        kwargs, described = mysql
        return Reader(
            described, lambda: connection.read_versions_at(kwargs, True), lambda: connection.read_run_log_at(kwargs),
            lambda: connection.read_tables_at(kwargs, OUR_TABLES), lambda: False,
            lambda: writable.surely_writable_at(kwargs), direct_url=_direct_url_given(options),
        )
    settings = resolve_settings(
        options.get("db_driver"), options.get("database_path"), options.get("database_url"),
        direct_url=options.get("direct_url"),
    )  # DATABASE_URL read as the full path reads it: not as an explicit --database-url (which implies its driver)
    dialect = dialect_for(settings)
    return Reader(
        settings.describe(), lambda: dialect.read_versions(settings, True), lambda: dialect.read_run_log(settings),
        lambda: dialect.read_tables(settings, OUR_TABLES), lambda: dialect.read_broken_references(settings),
        lambda: dialect.surely_writable(settings), direct_url=_direct_url_given(options),
    )


def _direct_url_given(options: dict[str, str]) -> bool:
    """Whether a direct URL is configured: the full path connects through it for changes."""
    return bool(options.get("direct_url") or os.environ.get(DIRECT_URL_ENV) or os.environ.get(f"{DIRECT_URL_ENV}_FILE"))



def log_at_head(read: Reader) -> list[Entry] | None:
    """``commands.log`` (every entry) for a database at head; None when unsure."""
    try:
        if _head_chain(read) is None:
            return None
        return [_entry(row) for row in read.run_log()]
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return None


def history_at_head(read: Reader) -> list[RevisionState] | None:
    """``commands.history`` for a database at head; None when unsure."""
    try:
        chain = _head_chain(read)
        if chain is None:
            return None
        when = applied_at([_entry(row) for row in read.run_log()])
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return None
    return [
        RevisionState(info.id, info.down_revision, info.description, applied=True, applied_at=when.get(info.id))
        for info in chain.revisions
    ]


def adopt_dry_run_at_head(read: Reader) -> AdoptionResult | None:
    """``commands.adopt(settings, dry_run=True)`` for a database at head: versioned, nothing
    to do, the tables that are not the service's listed; None when unsure (see the module)."""
    try:
        chain = _head_chain(read)
        if chain is None:
            return None
        tables, kinds = read.tables()
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return None
    if kinds or not set(OUR_TABLES) <= set(tables) or UNFINISHED_TABLE in tables:
        return None  # a view named like our tables, one missing, an unfinished operation: unusual
    others = tuple(sorted(name for name in tables if name not in OUR_TABLES and name not in TOOL_BOOKKEEPING))
    head = chain.revisions[-1].id
    detection = Detection(VERSIONED, Fingerprint(tables={}, other_tables=others), current_revision=head)
    return AdoptionResult(AdoptionPlan(detection, head))


def rehearsal_at_head(read: Reader) -> RehearsalResult | None:
    """``rehearse.rehearse(settings)`` for a database at head: nothing pending, no copy, when
    nothing the full path would refuse is there (see the module); None when unsure."""
    if read.direct_url:
        return None
    try:
        chain = _head_chain(read)
        if chain is None or read.broken_references() or not read.writable():
            return None
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return None
    head = chain.revisions[-1].id
    return RehearsalResult(read.description, head, head)


def manifest_current() -> bool:
    """True when ``migrate manifest`` would say "the manifest is current"; False when unsure."""
    try:
        chain = released_chain()
        series = _sqlalchemy_series()
        return chain is not None and series is not None and not stale_files(series=series)
    except Exception:  # noqa: BLE001 - "not sure": the full path explains it
        return False


def _head_chain(read: Reader) -> ReleasedChain | None:
    """The released chain when the database records exactly its head (and the manifest's)."""
    chain = released_chain()
    if chain is None or not chain.revisions:
        return None
    head = chain.revisions[-1].id
    if head != quick_status.head_revision() or read.versions() != [head]:
        return None
    return chain


def _entry(row: Sequence[Any]) -> Entry:
    """An entry from a bare driver's row of ``RUN_LOG_QUERY``, as SQLAlchemy would build it."""
    action, revision, start, end, outcome, backup, detail, version, host, user = _checked(row)
    return Entry(
        action=action, revision=revision, from_revision=start, to_revision=end,
        started_at=_moment(row[4]), ended_at=_moment(row[5]), outcome=outcome, backup_file=backup,
        detail=detail, tool_version=version, host=host, os_user=user, duration=_duration(row[12]),
    )


def _checked(row: Sequence[Any]) -> tuple[Any, ...]:
    texts = (*row[:4], *row[6:12])
    if len(row) != 13 or any(value is not None and not isinstance(value, str) for value in texts):
        raise ValueError("a run-log row of an unexpected shape")
    return texts


def _duration(value: object) -> float | None:
    """The stored ``seconds`` (measured client side when written), as the full path reads it."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"a run-log duration of an unexpected shape: {value!r}")


def _moment(value: object) -> dt.datetime:
    """A stored timestamp: a naive datetime from the server drivers, text from SQLite."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value
    if isinstance(value, str) and _SQLITE_DATETIME.fullmatch(value):
        return dt.datetime.fromisoformat(value)
    raise ValueError(f"a run-log timestamp of an unexpected shape: {value!r}")


def _sqlalchemy_series() -> str | None:
    """SQLAlchemy's ``major.minor`` from the source of the module that would be imported."""
    import importlib.util  # only the manifest check needs it: start-up time

    spec = importlib.util.find_spec("sqlalchemy")
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as handle:
        match = _SQLALCHEMY_VERSION.search(handle.read())
    return f"{match.group(1)}.{match.group(2)}" if match else None
