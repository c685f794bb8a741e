"""Resumable revisions on MySQL, where every DDL statement commits on its own.

A MySQL revision cannot roll back: killed or failing half-way, it leaves its earlier
statements applied while ``alembic_version`` still names the previous revision.  So each
MySQL branch of a revision is a list of :class:`Step`, each with a check that says whether
its effect is already there (column exists? index exists? constraint exists?).  A rerun
skips what is done and finishes the job; ``status`` counts the steps already done to say
where a database stands ("0005 partly applied: steps 1-3 of 5 done").  Offline (``--sql``)
every step is rendered.

The statements are also online where the server allows it (docs/performance.md, "MariaDB"):
:func:`alter` states ``ALGORITHM=INSTANT`` (catalog only) or ``ALGORITHM=INPLACE, LOCK=NONE``
(InnoDB rebuilds or builds an index while the service reads and writes), so a server that
would otherwise copy the table under a lock refuses instead, and :func:`fill_in_batches`
fills a new column a key range at a time, each batch its own short transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from types import ModuleType

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import op
from llm_proxy_db.dialects.mysql import pacing as mysql_pacing
from llm_proxy_db.dialects.mysql import shadow as mysql_shadow

# What each ALGORITHM is asked to allow: INSTANT changes only the catalog; INPLACE builds
# while DML goes on; COPY (a CHECK to validate) lets reads through but not writes.
LOCK_OF = {"INSTANT": "", "INPLACE": ", LOCK=NONE", "COPY": ", LOCK=SHARED"}
# ER_ALTER_OPERATION_NOT_SUPPORTED and ..._REASON: the server cannot honour the clause.
REFUSED = {1845, 1846}
# The batched fill: rows per batch to start with, and the time one batch may hold its row
# locks; the size halves when a batch takes longer (a loaded server) and doubles, up to
# FILL_MAX, when it takes under a quarter of it.
FILL_BATCH = 5_000
FILL_MIN, FILL_MAX = 500, 20_000
FILL_TARGET_S = 0.2
# The service's tables an online change (a shadow copy) may be under way for.
ONLINE_TABLES = ("audit_events", "tokens", "projects")


@dataclass(frozen=True)
class Step:
    """One statement of a MySQL revision: what it does, whether it is done, how to do it."""

    description: str
    done: Callable[[Connection], bool]
    run: Callable[[], None]


#: A test hook: called with each step's description once the step has run (a test that kills
#: the process between two steps pauses it there).
step_hook: Callable[[str], None] | None = None


#: A test hook: called with each fill batch's row count once it has committed.
batch_hook: Callable[[int], None] | None = None


def run_steps(steps: Sequence[Step], connection: Connection | None) -> None:
    """Run every step whose effect is not there yet (all of them offline, ``connection`` None).

    Online, each step first waits for lagging replicas and Galera flow control
    (:meth:`.pacing.Pacer.wait`): a DDL statement replays on a replica for as long as it
    ran here, so the lag of one step is not piled on the lag of the previous one.
    """
    pacer = mysql_pacing.Pacer.open(connection, _report) if connection is not None else None
    try:
        for step in steps:
            if connection is None or not step.done(connection):
                if pacer is not None:
                    pacer.wait()
                step.run()
                if step_hook is not None:
                    step_hook(step.description)
    finally:
        if pacer is not None:
            pacer.close()


def steps_done(steps: Sequence[Step], connection: Connection) -> int:
    """How many steps, from the first, have their effect in the database already."""
    count = 0
    for step in steps:
        if not step.done(connection):
            break
        count += 1
    return count


def has_table(connection: Connection, table: str) -> bool:
    """Whether ``table`` exists."""
    return bool(sa.inspect(connection).has_table(table))


def has_column(connection: Connection, table: str, column: str) -> bool:
    """Whether ``table.column`` exists (False when the table does not)."""
    return _scalar(
        connection,
        "SELECT count(*) FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (table, column),
    ) > 0


def is_nullable(connection: Connection, table: str, column: str) -> bool:
    """Whether ``table.column`` accepts NULL (False when it does not exist)."""
    return _scalar(
        connection,
        "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND COLUMN_NAME = %s AND IS_NULLABLE = 'YES'",
        (table, column),
    ) > 0


def has_index(connection: Connection, table: str, name: str) -> bool:
    """Whether ``table`` has an index (or unique constraint, or ``PRIMARY``) called ``name``."""
    return _scalar(
        connection,
        "SELECT count(*) FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = %s",
        (table, name),
    ) > 0


def primary_key(connection: Connection, table: str) -> list[str]:
    """The columns of ``table``'s primary key, in key order."""
    rows = connection.exec_driver_sql(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        (table,),
    )
    return [str(row[0]) for row in rows]


def check_constraints(connection: Connection, table: str) -> list[dict[str, str]]:
    """Every CHECK on ``table`` as ``{"name", "sqltext"}``, column-level ones included.

    SQLAlchemy reads CHECKs from ``SHOW CREATE TABLE`` and misses MariaDB's column-level
    ones (the service's inline ``outcome ... CHECK``); ``information_schema`` has them all.
    MySQL 8 has no ``TABLE_NAME`` in ``CHECK_CONSTRAINTS``: it is joined from
    ``TABLE_CONSTRAINTS``.
    """
    rows = connection.exec_driver_sql(
        "SELECT cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS cc "
        "JOIN information_schema.TABLE_CONSTRAINTS tc ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA "
        "AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' "
        "WHERE cc.CONSTRAINT_SCHEMA = DATABASE() AND tc.TABLE_NAME = %s ORDER BY cc.CONSTRAINT_NAME",
        (table,),
    )
    return [{"name": str(name), "sqltext": _plain_check(str(text))} for name, text in rows]


def _plain_check(text: str) -> str:
    """A CHECK clause without identifier quotes or MySQL 8's charset introducers (``_utf8mb4'x'``)."""
    return re.sub(r"_[a-z0-9]+'", "'", text.replace("`", ""))


def _scalar(connection: Connection, sql: str, params: tuple[str, ...]) -> int:
    return int(connection.exec_driver_sql(sql, params).scalar() or 0)


def partly_applied(connection: Connection, revision: str, module: ModuleType) -> str | None:
    """``"0005 partly applied: steps 1-2 of 4 done (...)"`` when the next revision's MySQL
    steps (``mysql_upgrade_steps`` of its file's ``module``) are partly in the database (a run
    killed or failed half-way), else None."""
    make_steps = getattr(module, "mysql_upgrade_steps", None)
    if make_steps is None:
        return None
    steps = make_steps()
    done = steps_done(steps, connection)
    copying = [text for table in ONLINE_TABLES if (text := mysql_shadow.leftovers(connection, table))]
    if copying:
        return f"{revision} partly applied: " + "; ".join(copying)
    if done == 0:
        return None
    names = "; ".join(step.description for step in steps[:done])
    if done == len(steps):
        return f"{revision} partly applied: all {done} steps done ({names}), not recorded yet"
    return f"{revision} partly applied: steps 1-{done} of {len(steps)} done ({names})"


def reverted_steps(connection: Connection, module: object) -> tuple[int, list[str]] | None:
    """How far the downgrade of the revision in ``module`` got: (steps done from the first,
    every step's description), from its ``mysql_downgrade_steps()``; None when the revision
    lists no such steps (its downgrade is one statement, or a check of its own)."""
    make_steps = getattr(module, "mysql_downgrade_steps", None)
    if make_steps is None:
        return None
    steps = make_steps()
    return steps_done(steps, connection), [step.description for step in steps]


def alter(table: str, clauses: str, algorithm: str) -> None:
    """``ALTER TABLE table clauses, ALGORITHM=algorithm`` (with its LOCK clause).

    A server that refuses the clause for this change (an older MySQL, another storage
    engine) gets the plain statement instead, and the run's progress says so: the change is
    made, only not online.  Offline (``--sql``) the clause is rendered as asked.
    """
    statement = f"ALTER TABLE {table} {clauses}"
    if _offline():
        op.execute(f"{statement}, ALGORITHM={algorithm}{LOCK_OF[algorithm]}")
        return
    bind = op.get_bind()
    try:
        bind.exec_driver_sql(f"{statement}, ALGORITHM={algorithm}{LOCK_OF[algorithm]}")
    except sa.exc.DBAPIError as exc:
        if mysql_pacing.error_code(exc) not in REFUSED:
            raise
        _report("step", f"{table}: ALGORITHM={algorithm} refused by the server, altered without it")
        bind.exec_driver_sql(statement)


def alter_online(
    table: str,
    key: str,
    clauses: str,
    *,
    fallback: str,
    algorithm: str = "COPY",
    accepts: str = "",
    before_swap: Callable[[], None] | None = None,
) -> None:
    """Give ``table`` the definition ``clauses`` make, without blocking the service's writes.

    ``algorithm`` is what the plain ``ALTER TABLE table fallback`` would need.  On MariaDB
    online, a change the server would make by copying the table under a write lock (``COPY``),
    or any rebuild under Galera's total order isolation (where even ``INPLACE`` blocks every
    node), goes through a shadow copy instead (:mod:`.shadow`: triggers, a batched copy,
    an atomic swap; ``key`` is a unique key of both tables; ``accepts`` and ``before_swap`` for
    a change that narrows what the table takes: see :func:`.shadow.rebuild`).  Offline (``--sql``), on one server
    for ``INPLACE``, and on MySQL 8 (whose schema-wide CHECK names a copy could not keep), it is
    the plain ``ALTER``.
    """
    bind = None if _offline() else op.get_bind()
    if bind is None or not mysql_shadow.is_mariadb(bind) or (algorithm != "COPY" and not mysql_shadow.under_toi(bind)):
        alter(table, fallback, algorithm)
        return

    def hook(stage: str) -> None:
        if step_hook is not None:
            step_hook(f"online copy of {table}: {stage}")

    with mysql_pacing.Pacer.open(bind, _report) as pacer:  # conflicts, replica lag, Galera flow control
        mysql_shadow.rebuild(bind, mysql_shadow.ShadowChange(table, key, clauses, accepts), report=_report_kw,
                             hook=hook, pacer=pacer, before_swap=before_swap)


def finish_online(table: str) -> None:
    """Drop what an online change of ``table`` left after its swap (nothing offline)."""
    if not _offline():
        bind = op.get_bind()
        if not mysql_shadow.under_toi(bind):  # one server: no node sessions to open
            mysql_shadow.finish(bind, table, _report_kw)
            return
        with mysql_pacing.Pacer.open(bind, _report) as pacer:  # its node sessions, for a drop on each node
            mysql_shadow.finish(bind, table, _report_kw, pacer=pacer)


def online_done(connection: Connection, table: str) -> bool:
    """Whether no online change of ``table`` left its old table behind."""
    return not mysql_shadow.has_table(connection, mysql_shadow.old_name(table))


def fill_in_batches(table: str, column: str, value: str, *, key: str, batch: int | None = None) -> None:
    """``UPDATE table SET column = value`` where it is NULL, one ``key`` range per transaction.

    Each batch commits at once, so it holds its row locks for a fraction of a second (its size
    follows :data:`FILL_TARGET_S`); the service's request-counter updates wait for one batch at
    most.  A batch that loses a conflict (1213: on Galera a certification conflict with the
    service's writes on another node) is run again, and before each batch the replicas' lag and
    Galera's flow control are waited for (:mod:`.pacing`).  ``key`` is the table's
    primary key: the boundary of each range is found on its index, so the pass reads each row
    once.  A rerun starts again from the first key and skips rows already filled.  Offline
    (``--sql``) one UPDATE is rendered.
    """
    fill = f"UPDATE {table} SET {column} = {value} WHERE {column} IS NULL"
    batch = batch or FILL_BATCH
    smallest, largest = min(FILL_MIN, batch), max(FILL_MAX, batch)
    if _offline():
        op.execute(fill)
        return
    bind = op.get_bind()
    with mysql_pacing.Pacer.open(bind, _report) as pacer:
        to_fill = mysql_shadow.counted_rows(bind, table, f" WHERE {column} IS NULL")  # the total shown
        _fill(bind, pacer, f"{table}.{column}", fill, key, table, batch, (smallest, largest, to_fill))


def _fill(
    bind: Connection, pacer: mysql_pacing.Pacer, what: str, fill: str, key: str, table: str, batch: int,
    bounds_of_size: tuple[int, int, int],
) -> None:
    """The batches of :func:`fill_in_batches`: each waits for the replicas (``pacer.wait``) and
    is run again after a conflict (``pacer.run_batch``); ``bounds_of_size`` ends with the rows to fill."""
    smallest, largest, total = bounds_of_size
    last: object = None
    done = 0
    phase = f"fill {what}"
    _report("backfill", phase, 0, total)
    while True:
        pacer.wait()
        after = "" if last is None else f" WHERE {key} > %s"
        params: tuple[object, ...] = () if last is None else (last,)
        upper = bind.exec_driver_sql(
            f"SELECT {key} FROM {table}{after} ORDER BY {key} LIMIT 1 OFFSET {batch - 1}", params
        ).scalar()
        bounds = [] if last is None else [f"{key} > %s"]
        bounds += [] if upper is None else [f"{key} <= %s"]
        where = "".join(f" AND {bound}" for bound in bounds)
        args = tuple(v for v in (last, upper) if v is not None)
        started = time.monotonic()
        done += pacer.run_batch(partial(_commit_batch, bind, fill + where, args))
        took = time.monotonic() - started
        if took > FILL_TARGET_S:
            batch = max(smallest, batch // 2)
        elif took < FILL_TARGET_S / 4:
            batch = min(largest, batch * 2)
        _report("backfill", phase, done, done if upper is None else max(total, done))
        if upper is None:
            return
        last = upper


def _commit_batch(bind: Connection, statement: str, args: tuple[object, ...]) -> int:
    """One batch, committed; the number of rows it changed."""
    count = int(bind.exec_driver_sql(statement, args).rowcount)
    bind.exec_driver_sql("COMMIT")
    if batch_hook is not None:
        batch_hook(count)
    return count


def has_null(connection: Connection, table: str, column: str) -> bool:
    """Whether some row of ``table`` has ``column`` NULL."""
    return connection.exec_driver_sql(f"SELECT 1 FROM {table} WHERE {column} IS NULL LIMIT 1").first() is not None


def column_default(connection: Connection, table: str, column: str) -> str | None:
    """``table.column``'s default as the server spells it (None for none or NULL)."""
    value = connection.exec_driver_sql(
        "SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (table, column),
    ).scalar()
    return None if value is None or str(value).upper() == "NULL" else str(value)


def _offline() -> bool:
    return bool(op.get_context().as_sql)


def _report_kw(kind: str, detail: str, *, done: int = 0, total: int = 0) -> None:
    _report(kind, detail, done, total)


def _report(kind: str, detail: str, done: int = 0, total: int = 0) -> None:
    """To the run's progress callback (``config.attributes["report"]``), when there is one."""
    config = op.get_context().config
    reporter = config.attributes.get("report") if config is not None else None
    if reporter is not None:
        reporter(kind, detail, done=done, total=total)
