"""Known failures of drivers and of the machine, translated into errors with a real remedy.

The CLI's error boundary asks :func:`translate` before it calls anything "unexpected": a
damaged SQLite file, a write lock the service holds past the busy timeout, a read-only
file, no usable temporary directory, a path that is not valid text, a PostgreSQL role
without privileges, a server-side ``statement_timeout`` or ``lock_timeout``.  Each becomes
the documented exit code (docs/cli.md, "Exit codes") and a hint naming cause and remedy.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llm_proxy_db.config.masking import mask_message
from llm_proxy_db.config.parsing import TABLE_LOCK_TIMEOUT_ENV
from llm_proxy_db.config.waits import bounded_waits, wait_bound
from llm_proxy_db.errors import (
    ConfigError,
    DatabaseConnectionError,
    LLMProxyDBError,
    LockTimeoutError,
    ReadOnlyDatabaseError,
)

_DAMAGED = ("file is not a database", "database disk image is malformed", "file is encrypted")
# SQLSTATE codes (PostgreSQL appendix A): privileges, statement_timeout, lock_timeout.
_INSUFFICIENT_PRIVILEGE = "42501"
_QUERY_CANCELED = "57014"
_LOCK_NOT_AVAILABLE = "55P03"
_READ_ONLY_TRANSACTION = "25006"
READ_ONLY_HINT = (
    "the server only reads: it is a hot standby (pg_is_in_recovery()), or "
    "default_transaction_read_only is on for the role or database; point DATABASE_URL (or "
    "LLM_PROXY_DIRECT_URL) at the primary"
)


def translate(exc: BaseException) -> LLMProxyDBError | None:
    """The user-facing error for a known failure, or None when it is really unexpected."""
    cause = getattr(exc, "orig", None) or exc
    statement = getattr(exc, "statement", None)
    # A statement of ours that waited past --lock-timeout; a bare driver error (no statement
    # known) is a revision's table lock wait, told by the rules below.
    waited = _lock_wait_ran_out(cause, statement) if statement else None
    if waited is not None:
        return waited
    for rule in _RULES:
        error = rule(cause)
        if error is not None:
            return error
    return None


@contextmanager
def bounded_lock_waits(seconds: float | None) -> Iterator[None]:
    """:func:`~llm_proxy_db.config.waits.bounded_waits` for a command's body, whose lock waits
    that run out become :class:`LockTimeoutError` (exit 7) here, where the bound is known."""
    with bounded_waits(seconds):
        try:
            yield
        except Exception as exc:
            waited = _lock_wait_ran_out(getattr(exc, "orig", None) or exc, getattr(exc, "statement", None))
            if waited is None:
                raise
            raise waited from None


def lock_wait_ran_out(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, wrapped or not) is a lock wait that lasted the whole
    bound (PostgreSQL ``lock_timeout``, MySQL's "Lock wait timeout exceeded"): waiting again
    would double the wait ``--lock-timeout`` promised."""
    return _lock_wait_ran_out(getattr(exc, "orig", None) or exc, None) is not None


# MySQL's "Lock wait timeout exceeded" (row locks and metadata locks alike).
_MYSQL_LOCK_WAIT_TIMEOUT = 1205
_WAITED_FOR = re.compile(r'\b(?:FROM|INTO|UPDATE|TABLE|JOIN)\s+[`"]?(\w+)', re.IGNORECASE)


def _lock_wait_ran_out(cause: BaseException, statement: str | None) -> LockTimeoutError | None:
    """A statement outside a revision (a read, a stamp, the run log) that waited for another
    session's lock longer than ``--lock-timeout`` (:mod:`llm_proxy_db.config.waits`): exit 7,
    naming what it waited for.  SQLite's busy timeout is its own rule below."""
    code = getattr(cause, "args", (None,))[0] if type(cause).__module__.startswith("pymysql") else None
    if getattr(cause, "sqlstate", None) != _LOCK_NOT_AVAILABLE and code != _MYSQL_LOCK_WAIT_TIMEOUT:
        return None
    found = _WAITED_FOR.search(statement or "")
    what = f"a lock on {found.group(1)}" if found else "a lock"
    return LockTimeoutError(
        f"waited {wait_bound():g}s (--lock-timeout) for {what} that another session holds: {_first_line(cause)}",
        hint="find the session holding it (PostgreSQL: pg_locks / pg_stat_activity; MySQL: SHOW "
        "PROCESSLIST), let it finish and run again, or raise --lock-timeout (LLM_PROXY_LOCK_TIMEOUT)",
    )


_LOCK_TIMEOUT_HINT = (
    f"another session held a lock on the table longer than {TABLE_LOCK_TIMEOUT_ENV} allows "
    "(find it: SELECT pid, state, xact_start, query FROM pg_stat_activity WHERE cardinality("
    "pg_blocking_pids(pid)) > 0 OR pid IN (SELECT unnest(pg_blocking_pids(pid)) FROM pg_stat_activity)); "
    f"retry when it has ended, or raise {TABLE_LOCK_TIMEOUT_ENV}"
)
_STATEMENT_TIMEOUT_HINT = (
    "a statement_timeout is set for the role or database; run the migration with "
    "PGOPTIONS='-c statement_timeout=0' or ALTER ROLE ... SET statement_timeout = 0"
)
_TMP_TABLE = re.compile(r"\b_alembic_tmp_(\w+)")
_CONSTRAINT = re.compile(r"(NOT NULL|UNIQUE|CHECK|FOREIGN KEY) constraint failed: ([\w.]+)")


def explain_driver_message(detail: str) -> tuple[str, str | None]:
    """A revision's driver message made readable, and a hint when the cause is known.

    SQLite table rebuilds copy rows into ``_alembic_tmp_<table>``: the message names the real
    table.  A constraint failure names the rows to fix; URLs and DSNs are masked.
    """
    text = _TMP_TABLE.sub(r"\1", mask_message(detail))
    if "lock timeout" in text:
        return text, _LOCK_TIMEOUT_HINT
    if "statement timeout" in text:
        return text, _STATEMENT_TIMEOUT_HINT
    match = _CONSTRAINT.search(text)
    if match is None:
        return text, None
    kind, column = match.groups()
    table = column.split(".")[0]
    remedies = {
        "NOT NULL": f"rows of {table} have no value (NULL) in {column}: fill them in or delete them",
        "UNIQUE": f"rows of {table} share a value of {column}: remove the duplicates",
        "CHECK": f"rows of {table} violate the new CHECK ({column}): correct them",
        "FOREIGN KEY": f"rows of {table} reference rows that do not exist: delete or re-point them",
    }
    return text, remedies[kind] + ", then run the migration again (the database was rolled back)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return mask_message(lines[0]) if lines else type(exc).__name__


def _sqlite(cause: BaseException) -> LLMProxyDBError | None:
    if not isinstance(cause, sqlite3.Error):
        return None
    text = str(cause).lower()
    if any(marker in text for marker in _DAMAGED):
        return DatabaseConnectionError(
            f"the SQLite database is damaged: {_first_line(cause)}",
            hint="restore it from a backup (llm-proxy-db db restore FILE); "
            "`sqlite3 FILE 'PRAGMA integrity_check'` shows the damage",
        )
    if "database is locked" in text or "database is busy" in text:
        return LockTimeoutError(
            "another connection (the running service?) held the SQLite write lock longer than the busy "
            "timeout (--lock-timeout when given, else 30s)",
            hint="retry when its write transaction has ended, raise --lock-timeout, or stop the service "
            "while migrating",
        )
    if "readonly database" in text or "unable to open database" in text:
        return DatabaseConnectionError(
            f"cannot write the SQLite database: {_first_line(cause)}",
            hint="make the database file and its directory writable by this user",
        )
    return None


def _postgres(cause: BaseException) -> LLMProxyDBError | None:
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate == _INSUFFICIENT_PRIVILEGE:
        return DatabaseConnectionError(
            f"the database role lacks a privilege: {_first_line(cause)}",
            hint="migrate as the tables' owner, or GRANT the role SELECT, INSERT, UPDATE, DELETE "
            "on alembic_version (and ownership of the tables a revision changes)",
        )
    if sqlstate == _READ_ONLY_TRANSACTION:
        return ReadOnlyDatabaseError(
            f"the database refused a write, it only reads: {_first_line(cause)}", hint=READ_ONLY_HINT
        )
    if sqlstate == _QUERY_CANCELED:
        return DatabaseConnectionError(
            f"the server cancelled a statement: {_first_line(cause)}",
            hint=_STATEMENT_TIMEOUT_HINT,
        )
    if sqlstate == _LOCK_NOT_AVAILABLE:
        return LockTimeoutError(
            f"a revision could not get a table lock in time: {_first_line(cause)}",
            hint=_LOCK_TIMEOUT_HINT,
        )
    return None


def _machine(cause: BaseException) -> LLMProxyDBError | None:
    if isinstance(cause, FileNotFoundError) and "temporary directory" in str(cause):
        return ConfigError(
            "no usable temporary directory", hint="set TMPDIR to an existing, writable directory"
        )
    if isinstance(cause, UnicodeError) and "surrogate" in str(cause):
        return ConfigError(
            "a path or value is not valid UTF-8 text (DATABASE_PATH, --database-path, --out ...)",
            hint="rename the file to a UTF-8 name, or reach it through a symlink with one",
        )
    return None


_RULES: tuple[Callable[[BaseException], LLMProxyDBError | None], ...] = (_sqlite, _postgres, _machine)
