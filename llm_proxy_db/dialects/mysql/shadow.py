"""Online table changes on MariaDB through a shadow table, for ALTERs the server cannot do online.

MariaDB validates a new CHECK by copying the table under ``LOCK=SHARED``: the service's writes
wait for the whole copy (34 s for 2M audit events).  Under Galera's total order isolation even
an ``INPLACE`` rebuild blocks every node.  :func:`rebuild` changes such a table the way
pt-online-schema-change does, with no lock held longer than one small batch:

1. ``_<table>_new`` is created ``LIKE`` the table (the operator's extra columns and indexes come
   along) and altered while empty;
2. three triggers carry every insert, update and delete of the service into it;
   a change that narrows what the table accepts (a downgrade's CHECK) says which rows the new
   definition takes (:attr:`ShadowChange.accepts`): until the copy ends, the others stay in
   the table and are not carried across (the service's writes never fail on the shadow's
   narrower CHECK); then the triggers carry every row as it is (a refused one fails from
   here on), ``before_swap`` refuses (or folds) the rows the new definition would refuse,
   and only then are the tables swapped;
3. the rows are copied a key range at a time, each batch its own short transaction that reads
   its source rows ``LOCK IN SHARE MODE`` (a delete racing the batch waits for it, so no deleted
   row comes back) and never overwrites a row a trigger wrote (``ON DUPLICATE KEY UPDATE`` a
   no-op: a row the new definition refuses is an error, never skipped as ``INSERT IGNORE`` would);
4. one ``RENAME TABLE t TO _t_old, _t_new TO t`` swaps them atomically, asked with ``NOWAIT`` and
   retried, so the service never queues behind it;
5. the triggers (now on ``_t_old``) and ``_t_old`` are dropped (a large ``_t_old`` under
   Galera's TOI on each node by itself: :mod:`.node_drop`).

A run killed anywhere is finished by the next one: a shadow table with all three triggers is
kept and the copy starts over (idempotent: the triggers kept it current); a shadow table without
them is dropped and rebuilt; a ``_t_old`` left after the swap is dropped.  :func:`leftovers`
tells ``status`` what a stopped run left behind.  Tables whose triggers or foreign keys the
copy could not carry are refused before anything changes (:func:`refuse_unsupported`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.engine import Connection

from llm_proxy_db.dialects.mysql import node_drop as mysql_node_drop
from llm_proxy_db.dialects.mysql import pacing as mysql_pacing
from llm_proxy_db.errors import MigrationError

# Rows per copy batch to start with, its bounds, and the time one batch may hold its row locks.
COPY_BATCH = 2_000
COPY_MIN, COPY_MAX = 200, 20_000
COPY_TARGET_S = 0.1
# ER_LOCK_WAIT_TIMEOUT: NOWAIT found a metadata lock held (a running transaction of the service).
LOCK_BUSY = {1205}
# How long the swap and the trigger DDL keep retrying their NOWAIT attempts before giving up.
DDL_RETRY_S = 60.0
DDL_RETRY_PAUSE_S = 0.05
# In the order they are created: a delete is carried across before an update can copy a row
# into the shadow table, so no row an update copied survives its later delete.
TRIGGER_EVENTS = ("delete", "update", "insert")

Report = Callable[..., None]


@dataclass(frozen=True)
class ShadowChange:
    """A change of one table through a shadow copy: the table, its one-column primary key, and
    the ``ALTER TABLE`` clauses that give the empty shadow table its new definition."""

    table: str
    key: str
    clauses: str
    #: For a narrowing change: the condition (SQL, ``{row}`` before each column name) a row
    #: must meet to be copied into the shadow table while the copy runs; "" copies every row.
    accepts: str = ""

    @property
    def shadow(self) -> str:
        """The new table while it is filled."""
        return shadow_name(self.table)

    @property
    def old(self) -> str:
        """The old table between the swap and its drop."""
        return old_name(self.table)


def shadow_name(table: str) -> str:
    """``_<table>_new``."""
    return f"_{table}_new"


def old_name(table: str) -> str:
    """``_<table>_old``."""
    return f"_{table}_old"


def trigger_name(table: str, event: str) -> str:
    """The name of our trigger copying ``event`` (insert, update, delete) of ``table``."""
    return f"llm_proxy_osc_{table}_{event}"


def is_mariadb(connection: Connection) -> bool:
    """Whether the server is MariaDB (the shadow path is used there; MySQL 8 names CHECKs per
    schema, so a shadow copy could not keep the service's constraint names)."""
    return bool(getattr(connection.dialect, "is_mariadb", False))


def has_table(connection: Connection, table: str) -> bool:
    """Whether ``table`` exists in the current database."""
    return _count(
        connection,
        "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    ) > 0


def our_triggers(connection: Connection, table: str) -> set[str]:
    """The names of our copy triggers present (on ``table`` or, after the swap, on ``_old``)."""
    return set(_trigger_bodies(connection, table))


def refuse_unsupported(connection: Connection, table: str) -> None:
    """Refuse, before any change, a table whose other triggers or foreign keys a copy would lose.

    ``CREATE TABLE ... LIKE`` copies columns, indexes and CHECKs but no foreign key: the
    table's own foreign keys are added to the shadow table under InnoDB's generated names
    (``_t_new_ibfk_N``, which the swap renames to ``t_ibfk_N``, the service's names); a
    foreign key named otherwise could not keep its name.  The old table's triggers are
    dropped with it; a foreign key pointing at the table would follow it to ``_old``.
    """
    problems = [
        f"trigger {name}" for (name,) in connection.exec_driver_sql(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
            "AND EVENT_OBJECT_TABLE = %s AND TRIGGER_NAME NOT LIKE 'llm\\_proxy\\_osc\\_%%'",
            (table,),
        )
    ]
    problems += [
        f"foreign key {name} ({source} -> {target})" for name, source, target in connection.exec_driver_sql(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND (REFERENCED_TABLE_NAME = %s "
            "OR (TABLE_NAME = %s AND CONSTRAINT_NAME NOT LIKE %s))",
            (table, table, f"{_like(table)}\\_ibfk\\_%"),
        )
    ]
    if problems:
        raise MigrationError(
            f"{table} cannot be changed online: a shadow copy would not keep its {', '.join(problems)}; "
            "nothing was changed",
            hint="drop them before the migration and create them again after it",
        )


def _like(name: str) -> str:
    return name.replace("_", "\\_")


def foreign_keys(connection: Connection, table: str) -> list[tuple[str, str, str, str, str]]:
    """``table``'s own foreign keys: (name, columns, referred table, referred columns, ON DELETE)."""
    rows = connection.exec_driver_sql(
        "SELECT k.CONSTRAINT_NAME, GROUP_CONCAT(CONCAT('`', k.COLUMN_NAME, '`') ORDER BY k.ORDINAL_POSITION), "
        "k.REFERENCED_TABLE_NAME, "
        "GROUP_CONCAT(CONCAT('`', k.REFERENCED_COLUMN_NAME, '`') ORDER BY k.ORDINAL_POSITION), r.DELETE_RULE "
        "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
        "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
        "AND r.TABLE_NAME = k.TABLE_NAME "
        "WHERE k.CONSTRAINT_SCHEMA = DATABASE() AND k.TABLE_NAME = %s AND k.REFERENCED_TABLE_NAME IS NOT NULL "
        "GROUP BY k.CONSTRAINT_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE ORDER BY k.CONSTRAINT_NAME",
        (table,),
    )
    return [tuple(str(value) for value in row) for row in rows]  # type: ignore[misc]


def under_toi(connection: Connection) -> bool:
    """Whether DDL here runs as Galera's total order isolation: on every node at once, blocking
    writes cluster-wide even where one server would alter online."""
    try:
        row = connection.exec_driver_sql("SELECT @@GLOBAL.wsrep_on, @@SESSION.wsrep_OSU_method").first()
    except Exception:  # noqa: BLE001 - a server built without wsrep has no such variables
        connection.exec_driver_sql("ROLLBACK")
        return False
    return row is not None and bool(row[0]) and str(row[1]).upper() == "TOI"


def leftovers(connection: Connection, table: str) -> str | None:
    """What a stopped online change of ``table`` left behind, in words, or None."""
    change = ShadowChange(table, "", "")
    if has_table(connection, change.shadow):
        rows = _count(connection, f"SELECT count(*) FROM `{change.shadow}`")
        triggers = len(our_triggers(connection, table))
        state = "kept current by its triggers" if triggers == len(TRIGGER_EVENTS) else "without its triggers"
        return f"online copy of {table} in progress: {change.shadow} holds {rows} rows, {state}"
    if has_table(connection, change.old):
        return f"online copy of {table} swapped in; the old table {change.old} is still to be dropped"
    return None


def rebuild(
    connection: Connection,
    change: ShadowChange,
    *,
    report: Report | None = None,
    pacer: mysql_pacing.Pacer | None = None,
    hook: Callable[[str], None] | None = None,
    before_swap: Callable[[], None] | None = None,
) -> None:
    """Give ``change.table`` its new definition through a shadow copy (module docstring).

    ``report(kind, detail, done=, total=)`` receives progress; ``pacer`` runs each copy batch
    (again after a conflict) and waits between two (replica lag, flow control: :mod:`.pacing`);
    ``hook(stage)`` is called after each stage (tests).
    ``before_swap()`` runs once the triggers carry every row as it is (for a narrowing change,
    :attr:`ShadowChange.accepts`): it raises to refuse the swap (the copy is then abandoned and
    the table left as it was), or changes the refused rows so the shadow table takes them.
    """
    say = report or (lambda *args, **kwargs: None)
    mark = hook or (lambda stage: None)
    if not has_table(connection, change.shadow) and has_table(connection, change.old):
        finish(connection, change.table, say, pacer=pacer)  # swapped already; only the drop was left
        return
    refuse_unsupported(connection, change.table)
    _prepare_shadow(connection, change, say)
    mark("shadow table created")
    try:
        _create_triggers(connection, change, lenient=True)
        mark("triggers created")
        copy_rows(connection, change, say, pacer=pacer, hook=mark)
        if change.accepts:
            # Replacing a trigger waits for every transaction of the service on the table: a
            # row written through the lenient triggers is committed (and seen) from here on.
            _create_triggers(connection, change, lenient=False)
            mark("triggers carry every row")
        if before_swap is not None:
            before_swap()
        if under_toi(connection):  # a copy of ``_old`` left on another node would fail the RENAME there
            mysql_node_drop.drop_everywhere(connection, change.old)
        _swap(connection, change, say)
    except Exception:
        # A row the new definition refuses, a lost connection...: the triggers must not stay to
        # fail the service's writes into a table that will never be swapped in.
        abandon(connection, change)
        raise
    mark("tables swapped")
    finish(connection, change.table, say, pacer=pacer)


def abandon(connection: Connection, change: ShadowChange) -> None:
    """Drop the triggers and the shadow table of an online change that failed (best effort)."""
    try:
        connection.exec_driver_sql("ROLLBACK")
        _drop_triggers(connection, change.table)
        _ddl(connection, f"DROP TABLE IF EXISTS `{change.shadow}`", retry=True)
    except Exception:  # noqa: BLE001 - the first error is the one to report; status shows what is left
        pass


def _prepare_shadow(connection: Connection, change: ShadowChange, say: Report) -> None:
    """A shadow table with the new definition; one without all its triggers is made anew (rows
    copied while no trigger ran may be stale)."""
    if has_table(connection, change.shadow):
        if len(our_triggers(connection, change.table)) == len(TRIGGER_EVENTS):
            say("step", f"{change.table}: resuming the online copy into {change.shadow}")
            return
        say("step", f"{change.table}: {change.shadow} left without its triggers; made anew")
        _drop_triggers(connection, change.table)
        _ddl(connection, f"DROP TABLE `{change.shadow}`")
    _ddl(connection, f"CREATE TABLE `{change.shadow}` LIKE `{change.table}`")
    _ddl(connection, f"ALTER TABLE `{change.shadow}` {change.clauses}")
    prefix = f"{change.table}_ibfk_"
    for name, columns, referred, referred_columns, on_delete in foreign_keys(connection, change.table):
        # The swap's rename gives ``_t_new_ibfk_N`` the name ``t_ibfk_N``: the service's own.
        shadow_fk = f"{change.shadow}_ibfk_{name[len(prefix):]}"
        _ddl(connection, f"ALTER TABLE `{change.shadow}` ADD CONSTRAINT `{shadow_fk}` FOREIGN KEY ({columns}) "
                         f"REFERENCES `{referred}` ({referred_columns}) ON DELETE {on_delete}")


def _columns(connection: Connection, table: str) -> list[str]:
    rows = connection.exec_driver_sql(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [str(row[0]) for row in rows]


def shared_columns(connection: Connection, change: ShadowChange) -> list[str]:
    """The columns both tables have, in the shadow table's order (what is copied)."""
    source = set(_columns(connection, change.table))
    return [column for column in _columns(connection, change.shadow) if column in source]


def _create_triggers(connection: Connection, change: ShadowChange, *, lenient: bool) -> None:
    """Our three triggers, each created or (when its body is not the one wanted, as after a
    stop between the two kinds) replaced in one statement: no write goes uncopied meanwhile.

    ``lenient``: a row the new definition does not accept (:attr:`ShadowChange.accepts`) is
    not carried across; otherwise every row is, and a refused one fails the service's write.
    """
    present = _trigger_bodies(connection, change.table)
    columns = shared_columns(connection, change)
    names = ", ".join(f"`{column}`" for column in columns)
    new_values = ", ".join(f"NEW.`{column}`" for column in columns)
    delete_old = f"DELETE FROM `{change.shadow}` WHERE `{change.key}` = OLD.`{change.key}`"
    replace_new = f"REPLACE INTO `{change.shadow}` ({names}) VALUES ({new_values})"
    if lenient and change.accepts:
        replace_new = f"IF {change.accepts.format(row='NEW.')} THEN {replace_new}; END IF"
    bodies = {
        "insert": f"BEGIN {replace_new}; END",
        "update": f"BEGIN {delete_old}; {replace_new}; END",
        "delete": delete_old,
    }
    for event in TRIGGER_EVENTS:
        name = trigger_name(change.table, event)
        if name not in present:
            _ddl(connection, f"CREATE TRIGGER `{name}` AFTER {event.upper()} ON `{change.table}` "
                             f"FOR EACH ROW {bodies[event]}", retry=True)
        elif present[name] != bodies[event]:
            _ddl(connection, f"CREATE OR REPLACE TRIGGER `{name}` AFTER {event.upper()} ON `{change.table}` "
                             f"FOR EACH ROW {bodies[event]}", retry=True)


def _trigger_bodies(connection: Connection, table: str) -> dict[str, str]:
    """Our copy triggers present: name -> body."""
    rows = connection.exec_driver_sql(
        "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
        "AND TRIGGER_NAME LIKE %s",
        (f"llm\\_proxy\\_osc\\_{table}\\_%",),
    )
    return {str(name): str(body) for name, body in rows}


def copy_rows(
    connection: Connection,
    change: ShadowChange,
    say: Report,
    *,
    pacer: mysql_pacing.Pacer | None = None,
    hook: Callable[[str], None] | None = None,
) -> int:
    """Copy every row into the shadow table, a primary-key range per transaction; return the count.

    A row already there (written by a trigger, or by an earlier run) is left as it is: it is at
    least as new as the one read here.  A batch that loses a conflict (1213) is rolled back and
    run again by ``pacer`` (:meth:`.pacing.Pacer.run_batch`; without one, a pacer that only
    retries); one that keeps losing is made smaller.
    """
    pacer = pacer or mysql_pacing.Pacer(connection, say, max_lag=0)
    key, batch, last, done = change.key, COPY_BATCH, None, 0
    columns = ", ".join(f"`{column}`" for column in shared_columns(connection, change))
    total = counted_rows(connection, f"`{change.table}`")
    phase = f"copy {change.table} into {change.shadow}"
    say("backfill", phase, done=0, total=total)
    while True:
        after, params = ("", ()) if last is None else (f" WHERE `{key}` > %s", (last,))
        upper = connection.exec_driver_sql(
            f"SELECT `{key}` FROM `{change.table}`{after} ORDER BY `{key}` LIMIT 1 OFFSET {batch - 1}", params
        ).scalar()
        bounds = ([] if last is None else [f"`{key}` > %s"]) + ([] if upper is None else [f"`{key}` <= %s"])
        bounds += [f"({change.accepts.format(row='')})"] if change.accepts else []
        where = (" WHERE " + " AND ".join(bounds)) if bounds else ""
        started = time.monotonic()
        statement = (
            f"INSERT INTO `{change.shadow}` ({columns}) SELECT {columns} FROM `{change.table}`{where} "
            f"LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `{change.shadow}`.`{key}` = `{change.shadow}`.`{key}`"
        )
        try:
            done += pacer.run_batch(partial(_copy_batch, connection, statement,
                                            tuple(v for v in (last, upper) if v is not None)))
        except Exception as exc:  # noqa: BLE001 - the driver's error, classified by its code
            if not mysql_pacing.is_conflict(exc) or batch <= COPY_MIN:
                raise
            # The service keeps writing rows of this range (on another Galera node): a smaller
            # range is certified before one of its writes lands in it.
            batch = max(COPY_MIN, batch // 4)
            say("step", f"copy batch kept losing conflicts: {batch} rows per batch from here")
            continue
        batch = _next_batch(batch, time.monotonic() - started)
        # the last batch's total is what was copied (the service may have deleted rows meanwhile)
        say("backfill", phase, done=done, total=done if upper is None else max(total, done))
        if hook is not None:
            hook("batch copied")
        if upper is None:
            return done
        last = upper
        pacer.wait()


def _copy_batch(connection: Connection, statement: str, params: tuple[object, ...]) -> int:
    """One batch in its own transaction, committed; the number of rows it wrote."""
    # Read committed: the batch locks the rows it copies, not the gaps between them, so the
    # service's inserts are never held by it (the setting applies to the next transaction).
    connection.exec_driver_sql("COMMIT")
    connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    copied = int(connection.exec_driver_sql(statement, params).rowcount)
    connection.exec_driver_sql("COMMIT")
    return copied


def _next_batch(batch: int, took: float) -> int:
    if took > COPY_TARGET_S:
        return max(COPY_MIN, batch // 2)
    if took < COPY_TARGET_S / 4:
        return min(COPY_MAX, batch * 2)
    return batch


def _swap(connection: Connection, change: ShadowChange, say: Report) -> None:
    """``RENAME TABLE t TO _t_old, _t_new TO t``: one atomic statement, never queued behind the
    service (NOWAIT, retried)."""
    attempts = _ddl(
        connection,
        f"RENAME TABLE `{change.table}` NOWAIT TO `{change.old}`, `{change.shadow}` TO `{change.table}`",
        retry=True,
    )
    say("step", f"{change.table}: new table swapped in ({attempts} attempt{'s' if attempts > 1 else ''})")


def finish(
    connection: Connection, table: str, say: Report | None = None, *, pacer: mysql_pacing.Pacer | None = None
) -> None:
    """Drop what the swap left: our triggers (now on ``_old``) and the old table; a large one
    under Galera's TOI on each node by itself, through ``pacer``'s node sessions
    (:mod:`.node_drop`)."""
    change = ShadowChange(table, "", "")
    _drop_triggers(connection, change.table)
    if has_table(connection, change.old):
        nodes = pacer.node_sessions() if pacer is not None else []
        if under_toi(connection) and mysql_node_drop.drop_node_by_node(connection, change.old, nodes):
            how = " on each node by itself"
        else:
            # IF EXISTS: under TOI a node where a cut-short node-by-node drop got to has none
            _ddl(connection, f"DROP TABLE IF EXISTS `{change.old}`", retry=True)
            how = ""
        if say is not None:
            say("step", f"{change.table}: old table {change.old} dropped{how}")


def _drop_triggers(connection: Connection, table: str) -> None:
    for name in sorted(our_triggers(connection, table)):
        _ddl(connection, f"DROP TRIGGER IF EXISTS `{name}`", retry=True)


def _ddl(connection: Connection, statement: str, *, retry: bool = False) -> int:
    """Run one DDL statement; with ``retry``, without waiting for a metadata lock the service
    holds (``lock_wait_timeout`` 0 for this statement), tried again until it goes through.
    Returns the number of attempts."""
    if not retry or under_toi(connection):
        # Under Galera's TOI the statement runs on every node, NOWAIT included: an applier that
        # finds the service's metadata lock fails where the others succeed, and is expelled
        # from the cluster as inconsistent (measured: `RENAME TABLE ... NOWAIT` with counter
        # UPDATEs on another node).  There the plain statement waits as TOI does, aborting the
        # local transactions in its way (the service sees a deadlock error and retries).
        connection.exec_driver_sql(statement.replace(" NOWAIT", "") if retry else statement)
        return 1
    deadline = time.monotonic() + DDL_RETRY_S
    previous = connection.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar()
    attempts = 0
    try:
        connection.exec_driver_sql("SET SESSION lock_wait_timeout = 0")
        while True:
            attempts += 1
            try:
                connection.exec_driver_sql(statement)
                return attempts
            except Exception as exc:  # noqa: BLE001 - the driver's error, classified by its code
                if mysql_pacing.error_code(exc) not in LOCK_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(DDL_RETRY_PAUSE_S)
    finally:
        connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(previous or 31536000)}")


def counted_rows(connection: Connection, table: str, where: str = "") -> int:
    """The rows of ``table`` (matching ``where``), counted, for the total a long pass reports.
    Not InnoDB's ``TABLE_ROWS``: after mass deletes its estimate is far off either way (three
    times the real count, or 0: the progress never reached its total, or had none).  The scan reads the
    smallest index once, a small part of the pass it announces; the read view ends at once."""
    count = _count(connection, f"SELECT COUNT(*) FROM {table}{where}")
    connection.exec_driver_sql("COMMIT")
    return count


def _count(connection: Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(connection.exec_driver_sql(sql, params).scalar() or 0)
