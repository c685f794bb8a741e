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
from llm_proxy_db.config.parsing import LOCK_RETRIES_ENV as RETRIES_ENV
from llm_proxy_db.config.parsing import parse_lock_retries, pg_duration_ms
from llm_proxy_db.migration.environment import lock_timeout
from llm_proxy_db.migration.offline import is_offline

T = TypeVar("T")

# Catalog changes and backfill batches must finish quickly once their lock is granted.
QUICK_STATEMENT_TIMEOUT = "15s"
# An ACCESS EXCLUSIVE request waiting in the lock queue stalls every request on the table
# behind it, so statements that take it give up sooner than the configured lock_timeout
# (and are retried like any lock timeout).
EXCLUSIVE_LOCK_TIMEOUT_MS = 100
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


def run(
    sql: str,
    what: str,
    *,
    quick: bool = True,
    exclusive: bool = False,
    params: dict[str, Any] | None = None,
) -> Any:
    """Run one statement under the lock limits, retried on lock conflicts; returns its rows
    (or, for a statement returning none, its row count).

    ``quick`` statements (catalog changes, batches) also get ``statement_timeout``; scans
    (``VALIDATE``, ``CREATE INDEX CONCURRENTLY``) may take as long as they need.
    ``exclusive`` statements (ACCESS EXCLUSIVE on a table the service uses) wait at most
    :func:`exclusive_lock_timeout` for their lock.  Offline the statement is only rendered.
    """
    if is_offline():
        op.execute(sql)
        return None
    bind = op.get_bind()
    return retrying(what, lambda: _execute_limited(bind, sql, params, quick=quick, exclusive=exclusive))


def exclusive_lock_timeout(configured: str | None = None) -> str:
    """The ``lock_timeout`` of an ACCESS EXCLUSIVE statement: the configured one, at most
    :data:`EXCLUSIVE_LOCK_TIMEOUT_MS` (``0``, wait forever, is left as the operator chose)."""
    value = lock_timeout() if configured is None else configured
    millis = pg_duration_ms(value)
    return value if millis == 0 or millis <= EXCLUSIVE_LOCK_TIMEOUT_MS else f"{EXCLUSIVE_LOCK_TIMEOUT_MS}ms"


def _execute_limited(
    bind: Connection, sql: str, params: dict[str, Any] | None, *, quick: bool, exclusive: bool = False
) -> Any:
    statement_timeout = QUICK_STATEMENT_TIMEOUT if quick else "0"
    lock = exclusive_lock_timeout() if exclusive else lock_timeout()
    if _autocommit(bind):
        if bind.info.get(_SESSION_LIMITS) != (statement_timeout, lock):  # one round trip saved per batch
            _set_limits(bind, statement_timeout, lock, local=False)
            bind.info[_SESSION_LIMITS] = (statement_timeout, lock)
        result = bind.execute(sa.text(sql), params or {})
        return result.fetchall() if result.returns_rows else result.rowcount
    with bind.begin_nested():
        _set_limits(bind, statement_timeout, lock, local=True)
        result = bind.execute(sa.text(sql), params or {})
        return result.fetchall() if result.returns_rows else result.rowcount


# The limits last set on an autocommit session by :func:`_execute_limited` (cleared when
# :func:`online_block` restores the session's own).
_SESSION_LIMITS = "llm_proxy_pg_online_limits"


def _set_limits(bind: Connection, statement_timeout: str, lock: str, *, local: bool) -> None:
    bind.execute(
        sa.text("SELECT set_config('lock_timeout', :lock, :local), "
                "set_config('statement_timeout', :statement, :local)"),
        {"lock": lock, "statement": statement_timeout, "local": local},
    )


def _autocommit(bind: Connection) -> bool:
    return bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@contextmanager
def online_block() -> Iterator[None]:
    """Commit the migration's transaction and run the block's statements one transaction each.

    The session's own ``lock_timeout`` and ``statement_timeout`` are restored afterwards.
    Offline, the block renders a ``COMMIT`` and the session's ``lock_timeout`` first.
    """
    with op.get_context().autocommit_block():
        if is_offline():
            op.execute(f"SET lock_timeout = '{lock_timeout()}'")
            yield
            return
        bind = op.get_bind()
        saved = bind.exec_driver_sql(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        ).one()
        bind.info.pop(_SESSION_LIMITS, None)
        try:
            yield
        finally:
            bind.info.pop(_SESSION_LIMITS, None)
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


# Sort memory for the concurrent index builds (PostgreSQL's default, 64 MB, makes a
# million-row build spill to disk); a larger session setting is kept.
INDEX_BUILD_MEMORY_MB = 256
# A concurrent index build is a background job beside live traffic: it gets no parallel
# workers, so the server's other cores stay with the service (a parallel build of the 1M-row
# indexes on a 2-core server stalled every request for ~350 ms: docs/performance.md).
INDEX_BUILD_PARALLEL_WORKERS = 0


def ensure_index(name: str, create_concurrently: str) -> None:
    """Build an index ``CONCURRENTLY`` unless a valid one exists; an invalid one is rebuilt."""

    def attempt() -> None:
        state = index_state(name)
        if state == "valid":
            return
        if state == "invalid":
            _execute_limited(op.get_bind(), f"DROP INDEX CONCURRENTLY IF EXISTS {name}", None, quick=False)
        with _index_build_memory():
            _execute_limited(op.get_bind(), create_concurrently, None, quick=False)

    if is_offline():
        op.execute(create_concurrently)
        return
    retrying(f"index {name}", attempt)


@contextmanager
def _index_build_memory() -> Iterator[None]:
    """For the block: ``maintenance_work_mem`` of at least :data:`INDEX_BUILD_MEMORY_MB`, and
    :data:`INDEX_BUILD_PARALLEL_WORKERS` parallel workers (the session's settings come back after)."""
    bind = op.get_bind()
    saved = bind.exec_driver_sql(
        "SELECT current_setting('maintenance_work_mem'), current_setting('max_parallel_maintenance_workers')"
    ).one()
    bind.execute(
        sa.text("SELECT set_config('maintenance_work_mem', CASE WHEN setting::bigint < :kb "
                "THEN :wanted ELSE current_setting('maintenance_work_mem') END, false) "
                "FROM pg_settings WHERE name = 'maintenance_work_mem'"),
        {"kb": INDEX_BUILD_MEMORY_MB * 1024, "wanted": f"{INDEX_BUILD_MEMORY_MB}MB"},
    )
    bind.execute(sa.text("SELECT set_config('max_parallel_maintenance_workers', :n, false)"),
                 {"n": str(INDEX_BUILD_PARALLEL_WORKERS)})
    try:
        yield
    finally:
        bind.execute(sa.text("SELECT set_config('maintenance_work_mem', :m, false), "
                             "set_config('max_parallel_maintenance_workers', :w, false)"),
                     {"m": saved[0], "w": saved[1]})


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


# The backfill walks the table's pages in ranges sized so that one batch (one transaction)
# takes about this long: a service request touching a row of the running batch waits for its
# commit, so a batch must stay well under the ~100 ms a request may be delayed.
BACKFILL_BATCH_SECONDS = 0.04
# Pages in the first batch, and the bounds the adaptive size stays within.
BACKFILL_FIRST_PAGES = 4
BACKFILL_MAX_PAGES = 4096
# Rows per batch of the final pass over rows the page walk missed (see :func:`backfill`).
BACKFILL_STRAGGLER_ROWS = 2000

_RANGE_SQL = (
    "UPDATE {table} SET {column} = {value} "
    "WHERE ctid >= '({first},0)'::tid AND ctid < '({end},0)'::tid AND {column} IS NULL"
)
# The ctids are read first (an InitPlan, before any row is locked); a row updated by someone
# else in between has moved, is skipped here and found by the next round.
_STRAGGLERS_SQL = (
    "UPDATE {table} SET {column} = {value} WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM {table} WHERE {column} IS NULL LIMIT {size})) AND {column} IS NULL"
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


def backfill(table: str, column: str, value: str, *, key: str) -> int:
    """Set ``column = value`` where it is NULL, in short transactions; returns the rows filled.

    The table's pages are walked in ranges (``ctid`` range scans, PostgreSQL 14+), one
    ``UPDATE`` per range, each its own transaction; the number of pages per range adapts so a
    batch takes about :data:`BACKFILL_BATCH_SECONDS`.  Each page is read once and the new row
    versions land past the pages being walked.  A row the service updates while still NULL
    may move to a page already walked: a last pass finds such rows by a scan and fills them
    by ``ctid``, until none is left.  A rerun after a stop walks the pages again, skipping
    filled rows (reading a page costs far less than writing it).  Progress (rows done /
    total, rate, time left) goes to the callback.  Offline, a ``DO`` block that walks ``key``
    and commits after every batch is rendered instead.
    """
    names = {"table": table, "column": column, "value": value}
    if is_offline():
        op.execute(_OFFLINE_BACKFILL.format(size=BACKFILL_STRAGGLER_ROWS, key=key, **names))
        return 0
    total = int(scalar(f"SELECT count(*) FROM {table} WHERE {column} IS NULL"))
    meter = _Meter(f"{table}.{column}", total)
    with _asynchronous_commit():
        _fill_page_ranges(names, meter)
        _fill_stragglers(names, meter)
    return meter.done


def next_batch_pages(pages: int, seconds: float, *, target: float | None = None) -> int:
    """The page count for the next batch: scaled towards the target time per batch, at most
    doubling or halving at once, within 1 and :data:`BACKFILL_MAX_PAGES`."""
    goal = BACKFILL_BATCH_SECONDS if target is None else target
    factor = 2.0 if seconds <= 0 else min(2.0, max(0.5, goal / seconds))
    return max(1, min(BACKFILL_MAX_PAGES, int(pages * factor)))


def _fill_page_ranges(names: dict[str, str], meter: _Meter) -> None:
    what = f"backfill of {names['table']}.{names['column']}"
    pages = int(scalar(
        "SELECT pg_relation_size(CAST(:table AS regclass)) / current_setting('block_size')::int",
        table=names["table"],
    ))
    first, step = 0, min(BACKFILL_FIRST_PAGES, BACKFILL_MAX_PAGES)
    while first < pages:
        end = min(first + step, pages)
        started = time.monotonic()
        filled = run(_RANGE_SQL.format(first=first, end=end, **names), what)
        step = next_batch_pages(step, time.monotonic() - started)
        meter.add(int(filled or 0))
        first = end
        boundary(f"backfill {names['table']}.{names['column']}", quiet=True)


def _fill_stragglers(names: dict[str, str], meter: _Meter) -> None:
    what = f"backfill of {names['table']}.{names['column']} (rows moved during the walk)"
    exists = f"SELECT EXISTS (SELECT 1 FROM {names['table']} WHERE {names['column']} IS NULL)"
    while scalar(exists):
        filled = run(_STRAGGLERS_SQL.format(size=BACKFILL_STRAGGLER_ROWS, **names), what)
        meter.add(int(filled or 0))
        boundary(f"backfill {names['table']}.{names['column']} stragglers", quiet=True)


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
