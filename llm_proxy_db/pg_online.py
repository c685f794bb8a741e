"""PostgreSQL statements run by revisions without stalling the live service.

Every statement a revision runs here carries a short ``lock_timeout`` (the table lock is
either granted quickly or not at all, so the service's queries never queue behind a waiting
``ALTER TABLE``) and a ``statement_timeout`` when it must be quick.  A lock timeout or a
deadlock is retried a bounded number of times with a growing pause, and each retry is
reported through the run's progress callback.

Two ways of running:

- inside :func:`online_block` (Alembic's ``autocommit_block``), each statement is its own
  short transaction; the limits are session settings restored when the block ends;
- inside the migration's own transaction, each attempt runs in a savepoint with ``SET
  LOCAL`` limits, so a lock timeout rolls back that statement only.

Revisions built of such steps must be resumable: every step checks whether it is already
done.  :func:`boundary` marks the points between transactions; tests hook it to stop a run
there and prove a second run finishes the job.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import context, op
from llm_proxy_db.revision_helpers import is_offline
from llm_proxy_db.settings_parsing import LOCK_RETRIES_ENV as RETRIES_ENV
from llm_proxy_db.settings_parsing import parse_lock_retries

T = TypeVar("T")

# Catalog changes and backfill batches must finish quickly once their lock is granted.
QUICK_STATEMENT_TIMEOUT = "15s"
# lock_not_available (lock_timeout) and deadlock_detected: both mean "try again later".
LOCK_CONFLICTS = frozenset({"55P03", "40P01"})

# Tests set this to stop a run at a named transaction boundary (see :func:`boundary`).
boundary_hook: Callable[[str], None] | None = None


def lock_retries(env: Mapping[str, str] | None = None) -> int:
    """How many times a statement is tried when its lock is not granted (``LLM_PROXY_LOCK_RETRIES``)."""
    return parse_lock_retries((os.environ if env is None else env).get(RETRIES_ENV))


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, looking through SQLAlchemy's wrapper and causes."""
    seen: BaseException | None = exc
    while seen is not None:
        for candidate in (seen, getattr(seen, "orig", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if code:
                return str(code)
        seen = seen.__cause__
    return None


def is_lock_conflict(exc: BaseException) -> bool:
    """True for a lock timeout or a deadlock: the statement may succeed when tried again."""
    return sqlstate(exc) in LOCK_CONFLICTS


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: 0.2 s doubling, at most 5 s, with jitter."""
    return min(5.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


def report(kind: str, detail: str, done: int = 0, total: int = 0) -> None:
    """Tell the run's progress callback (``config.attributes['report']``), if there is one."""
    reporter = context.config.attributes.get("report")
    if reporter is not None:
        reporter(kind, detail, done=done, total=total)


def boundary(name: str, *, quiet: bool = False) -> None:
    """A transaction boundary of a multi-transaction revision: reported (unless ``quiet``:
    backfill batches have their own progress events), and a test hook."""
    if not quiet:
        report("step", name)
    if boundary_hook is not None:
        boundary_hook(name)


def retrying(what: str, attempt_once: Callable[[], T]) -> T:
    """Run ``attempt_once`` until it gets its locks, at most :func:`lock_retries` times."""
    attempts = lock_retries()
    for attempt in range(1, attempts + 1):
        try:
            return attempt_once()
        except sa.exc.DBAPIError as exc:
            if not is_lock_conflict(exc) or attempt == attempts:
                raise
            delay = backoff(attempt)
            reason = "deadlock" if sqlstate(exc) == "40P01" else "lock not granted in time"
            report(
                "lock_retry",
                f"{what}: {reason} (attempt {attempt} of {attempts}), retrying in {delay:.1f}s",
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def run(sql: str, what: str, *, quick: bool = True, params: dict[str, Any] | None = None) -> Any:
    """Run one statement under the lock limits, retried on lock conflicts; returns its rows.

    ``quick`` statements (catalog changes, batches) also get ``statement_timeout``; scans
    (``VALIDATE``, ``CREATE INDEX CONCURRENTLY``) may take as long as they need.  Offline the
    statement is only rendered.
    """
    if is_offline():
        op.execute(sql)
        return None
    bind = op.get_bind()
    return retrying(what, lambda: _execute_limited(bind, sql, params, quick=quick))


def _execute_limited(bind: Connection, sql: str, params: dict[str, Any] | None, *, quick: bool) -> Any:
    statement_timeout = QUICK_STATEMENT_TIMEOUT if quick else "0"
    if _autocommit(bind):
        _set_limits(bind, statement_timeout, local=False)
        result = bind.execute(sa.text(sql), params or {})
        return result.fetchall() if result.returns_rows else None
    with bind.begin_nested():
        _set_limits(bind, statement_timeout, local=True)
        result = bind.execute(sa.text(sql), params or {})
        return result.fetchall() if result.returns_rows else None


def _set_limits(bind: Connection, statement_timeout: str, *, local: bool) -> None:
    from llm_proxy_db.environment import lock_timeout

    bind.execute(
        sa.text("SELECT set_config('lock_timeout', :lock, :local), "
                "set_config('statement_timeout', :statement, :local)"),
        {"lock": lock_timeout(), "statement": statement_timeout, "local": local},
    )


def _autocommit(bind: Connection) -> bool:
    return bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@contextmanager
def online_block() -> Iterator[None]:
    """Commit the migration's transaction and run the block's statements one transaction each.

    The session's own ``lock_timeout`` and ``statement_timeout`` are restored afterwards.
    Offline, the block renders a ``COMMIT`` and the session's ``lock_timeout`` first.
    """
    from llm_proxy_db.environment import lock_timeout

    with op.get_context().autocommit_block():
        if is_offline():
            op.execute(f"SET lock_timeout = '{lock_timeout()}'")
            yield
            return
        bind = op.get_bind()
        saved = bind.exec_driver_sql(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        ).one()
        try:
            yield
        finally:
            bind.execute(
                sa.text("SELECT set_config('lock_timeout', :lock, false), "
                        "set_config('statement_timeout', :statement, false)"),
                {"lock": saved[0], "statement": saved[1]},
            )


def in_external_transaction() -> bool:
    """True when a caller runs the revision inside its own transaction (nothing may commit)."""
    return bool(getattr(op.get_context(), "_in_external_transaction", False))


def scalar(sql: str, **params: Any) -> Any:
    """One value read on the migration connection (never offline)."""
    return op.get_bind().execute(sa.text(sql), params).scalar()


def index_state(name: str) -> str | None:
    """``valid``, ``invalid`` (a failed concurrent build) or None for a missing index."""
    if is_offline():
        return None
    valid = scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND pg_table_is_visible(c.oid)",
        name=name,
    )
    return None if valid is None else ("valid" if valid else "invalid")


def ensure_index(name: str, create_concurrently: str) -> None:
    """Build an index ``CONCURRENTLY`` unless a valid one exists; an invalid one is rebuilt."""

    def attempt() -> None:
        state = index_state(name)
        if state == "valid":
            return
        if state == "invalid":
            _execute_limited(op.get_bind(), f"DROP INDEX CONCURRENTLY IF EXISTS {name}", None, quick=False)
        _execute_limited(op.get_bind(), create_concurrently, None, quick=False)

    if is_offline():
        op.execute(create_concurrently)
        return
    retrying(f"index {name}", attempt)


def constraint_exists(table: str, name: str) -> bool:
    """Whether ``table`` has a constraint called ``name`` (offline: assumed not)."""
    if is_offline():
        return False
    return bool(
        scalar(
            "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = to_regclass(:table)",
            name=name,
            table=table,
        )
    )


# Rows per backfill transaction.  A service request touching a row of the running batch
# waits for its commit, so a batch must stay well under the 50 ms a request may take.
BACKFILL_BATCH = 500

# One batch: the next ``size`` keys after ``:last`` as an index range (a join with the batch
# would let the planner pick a sequential scan of the whole table for every batch).
_BATCH_SQL = (
    "WITH bound AS (SELECT max({key}) AS upper FROM "
    "(SELECT {key} FROM {table} WHERE {after} ORDER BY {key} LIMIT :size) AS keys), "
    "filled AS (UPDATE {table} SET {column} = {value} WHERE {after} "
    "AND {key} <= (SELECT upper FROM bound) AND {column} IS NULL RETURNING 1) "
    "SELECT (SELECT upper FROM bound), (SELECT count(*) FROM filled)"
)

_OFFLINE_BACKFILL = """DO $$
DECLARE filled bigint;
BEGIN
  LOOP
    UPDATE {table} SET {column} = {value}
     WHERE {key} IN (SELECT {key} FROM {table} WHERE {column} IS NULL LIMIT {size});
    GET DIAGNOSTICS filled = ROW_COUNT;
    COMMIT;
    EXIT WHEN filled = 0;
  END LOOP;
END $$"""


def backfill(table: str, column: str, value: str, *, key: str, batch: int = BACKFILL_BATCH) -> int:
    """Set ``column = value`` where it is NULL, ``batch`` rows per short transaction.

    Walks ``key`` (a unique, indexed column) in order, so each batch is an index range and
    the whole pass reads each row once; a rerun after a stop starts again from the first key
    and skips rows already filled.  Progress (rows, rate, time left) goes to the callback.
    Offline, a ``DO`` block that commits after every batch is rendered instead.  Returns the
    number of rows filled.
    """
    names = {"table": table, "column": column, "value": value, "key": key}
    if is_offline():
        op.execute(_OFFLINE_BACKFILL.format(size=batch, **names))
        return 0
    total = int(scalar(f"SELECT count(*) FROM {table} WHERE {column} IS NULL"))
    meter = _Meter(f"{table}.{column}", total)
    with _asynchronous_commit():
        _fill_batches(names, key, batch, meter)
    return meter.done


@contextmanager
def _asynchronous_commit() -> Iterator[None]:
    """Batches commit without waiting for the WAL flush: a crash may lose the last few, which
    the next run fills again (it looks for NULLs), and the many commits cost no fsync each."""
    bind = op.get_bind()
    saved = bind.exec_driver_sql(
        "SELECT current_setting('synchronous_commit'), set_config('synchronous_commit', 'off', false)"
    ).scalar_one()
    try:
        yield
    finally:
        bind.execute(sa.text("SELECT set_config('synchronous_commit', :v, false)"), {"v": saved})


def _fill_batches(names: dict[str, str], key: str, batch: int, meter: _Meter) -> None:
    table, column = names["table"], names["column"]
    last: Any = None
    while True:
        sql = _BATCH_SQL.format(after="true" if last is None else f"{key} > :last", **names)
        params = {"size": batch} if last is None else {"size": batch, "last": last}
        rows = run(sql, f"backfill of {table}.{column}", params=params)
        last, filled = rows[0]
        meter.add(int(filled))
        if last is None:
            return
        boundary(f"backfill {table}.{column}", quiet=True)


class _Meter:
    """Rows done out of a total, reported with a rate and an estimate of the time left."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.started = time.monotonic()
        report("backfill", f"{what}: {total} rows to fill", 0, total)

    def add(self, rows: int) -> None:
        self.done += rows
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0.0
        report(
            "backfill",
            f"{self.what}: {self.done}/{self.total} rows, {rate:,.0f} rows/s, {left:.0f}s left",
            self.done,
            self.total,
        )


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` while migrating, so the server's work stops too.

    psycopg cancels the running statement on the server when ``KeyboardInterrupt`` (Ctrl-C,
    SIGINT) or ``SystemExit`` interrupts a query; SIGTERM's default would end the process
    without that, leaving the backend to hold its locks until it notices.  Only the main
    thread may install handlers, and a handler someone else installed is left alone.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
