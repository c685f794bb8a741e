"""audit outcome values: the outcome CHECK widened to success, failure, denied, error (goose version 6)

Neither dialect copies or locks ``audit_events`` for longer than a catalog change, so the
cost of this revision does not grow with the audit log:

- SQLite rewrites the CHECK text in place (SQLite's documented procedure for changes that
  do not touch stored data; see ``set_sqlite_check_in``).  Offline (``--sql``) output cannot
  read the current table text, so it renders the equivalent table rebuild instead.
- PostgreSQL replaces ``audit_events_outcome_check`` with the wider CHECK added
  ``NOT VALID`` (a brief ACCESS EXCLUSIVE lock, no scan), commits, then runs
  ``VALIDATE CONSTRAINT`` in its own transaction, which scans under SHARE UPDATE EXCLUSIVE
  only (reads and writes continue).  Trade-off: the upgrade is two transactions.  If it stops
  between them the database holds the wider constraint, not yet validated, at revision 0006;
  the service works with it and running the upgrade again finishes the job.

The downgrade narrows the CHECK.  It first takes the table's lock (by changing the
constraint), then refuses while any event uses an outcome the old CHECK forbids: those rows
would otherwise be lost.  It stays one transaction, validating under the lock it holds, so
no row can slip in between the check and the commit.

Revision ID: 0007
Revises: 0006
Create Date: 2025-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import (
    Step,
    alter,
    alter_online,
    check_constraints,
    finish_online,
    online_done,
    run_steps,
)
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.revision_helpers import (
    is_mysql,
    is_offline,
    is_sqlite,
    rebuild_sqlite_table,
    refuse_if_rows,
    set_sqlite_check_in,
)
from llm_proxy_db.schema.fingerprint import normalise_check

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_VALUES = ("success", "failure", "denied", "error")
OLD_VALUES = ("success", "failure")
CHECK_NAME = "audit_events_outcome_check"
INDEXES = {
    "idx_audit_timestamp": ["timestamp"],
    "idx_audit_action": ["action"],
    "idx_audit_project_id": ["project_id"],
    "idx_audit_client_ip": ["client_ip"],
    "idx_audit_request_id": ["request_id"],
    "idx_audit_outcome": ["outcome"],
    "idx_audit_ip_action": ["client_ip", "action"],
}


def upgrade() -> None:
    if is_mysql():
        run_steps(mysql_upgrade_steps(), None if is_offline() else op.get_bind())
        return
    _replace_check(NEW_VALUES, validate_after_commit=True)


def downgrade() -> None:
    if is_mysql():
        _refuse_new_outcomes()
        run_steps(mysql_downgrade_steps(), None if is_offline() else op.get_bind())
        return
    _replace_check(OLD_VALUES, validate_after_commit=False)


# MySQL.  The old CHECK is the service's inline one: a column constraint named ``outcome`` on
# MariaDB, ``audit_events_chk_1`` on MySQL 8 (where the service's own goose file 5 leaves it
# beside the new one).  The wider named CHECK is added first, then every other CHECK on
# outcome is dropped, so a stop between the two leaves a database that accepts what 0006
# accepted and that a rerun finishes.


def mysql_upgrade_steps() -> list[Step]:
    """The upgrade on MySQL: add the four-value named CHECK, then drop the old one(s)."""
    return [
        Step(f"add constraint {CHECK_NAME} (four values)", lambda c: _named_check_is(c, NEW_VALUES), _add_named_check),
        Step("drop the old two-value CHECK on outcome", lambda c: not _other_checks(c), _drop_other_checks),
        Step("drop the old copy of audit_events", lambda c: online_done(c, "audit_events"),
             lambda: finish_online("audit_events")),
    ]


def mysql_downgrade_steps() -> list[Step]:
    """The downgrade on MySQL: restore the inline two-value CHECK, then drop the named one."""
    return [
        Step("restore the inline two-value CHECK on outcome", lambda c: bool(_other_checks(c)), _restore_inline_check),
        Step(
            f"drop constraint {CHECK_NAME}",
            lambda c: not any(check["name"] == CHECK_NAME for check in check_constraints(c, "audit_events")),
            # DROP CONSTRAINT, which MariaDB and MySQL 8.0.19+ both read (SQLAlchemy renders
            # MySQL's DROP CHECK when it cannot ask the server: an offline script).
            lambda: op.execute(f"ALTER TABLE audit_events DROP CONSTRAINT {CHECK_NAME}"),
        ),
        Step("drop the old copy of audit_events", lambda c: online_done(c, "audit_events"),
             lambda: finish_online("audit_events")),
    ]


def _restore_inline_check() -> None:
    """The service's inline two-value CHECK back; on MariaDB through a shadow copy that also
    drops the named CHECK (validating a CHECK in place would block writes for a whole copy).

    The service still writes denied and error events while the copy runs: they stay in
    ``audit_events`` and are not copied (the shadow table's CHECK would fail the service's
    insert); before the swap they are refused (or folded) as before the copy."""
    inline = f"MODIFY COLUMN outcome VARCHAR(20) NOT NULL CHECK ({_check_sql(OLD_VALUES)})"
    if not is_offline() and any(c["name"] == CHECK_NAME for c in check_constraints(op.get_bind(), "audit_events")):
        inline_clauses = f"DROP CONSTRAINT {CHECK_NAME}, {inline}"
    else:
        inline_clauses = inline
    alter_online("audit_events", "id", inline_clauses, fallback=inline,
                 accepts=_check_sql(OLD_VALUES).replace("outcome", "{row}`outcome`", 1),
                 before_swap=_refuse_new_outcomes)


def _named_check_is(connection: sa.engine.Connection, values: tuple[str, ...]) -> bool:
    wanted = normalise_check(_check_sql(values))
    return any(
        check["name"] == CHECK_NAME and normalise_check(check["sqltext"]) == wanted
        for check in check_constraints(connection, "audit_events")
    )


def _add_named_check() -> None:
    """InnoDB validates a new CHECK by copying the table (``ALGORITHM=COPY, LOCK=SHARED``:
    writes to ``audit_events`` would wait for the whole copy), so on MariaDB the table is
    changed through a shadow copy instead (``dialects/mysql/shadow.py``); offline and on MySQL 8 the
    ``ALTER`` is kept."""
    clauses = f"ADD CONSTRAINT {CHECK_NAME} CHECK ({_check_sql(NEW_VALUES)})"
    if not is_offline() and any(c["name"] == CHECK_NAME for c in check_constraints(op.get_bind(), "audit_events")):
        clauses = f"DROP CONSTRAINT {CHECK_NAME}, {clauses}"
    # The shadow copy drops the old inline CHECK too (MODIFY COLUMN drops it on MariaDB).
    alter_online("audit_events", "id", f"MODIFY COLUMN outcome VARCHAR(20) NOT NULL, {clauses}", fallback=clauses)


def _other_checks(connection: sa.engine.Connection) -> list[str]:
    """Names of the CHECKs on outcome other than ours (the service's inline one)."""
    return [
        check["name"]
        for check in check_constraints(connection, "audit_events")
        if check["name"] != CHECK_NAME and "outcome" in check["sqltext"].lower()
    ]


def _drop_other_checks() -> None:
    # Dropping a CHECK validates nothing: a catalog change (INSTANT).
    if is_offline():  # MariaDB drops its column constraint with MODIFY COLUMN; MySQL 8 needs the name
        alter("audit_events", "MODIFY COLUMN outcome VARCHAR(20) NOT NULL", "INSTANT")
        op.execute("-- MySQL 8 only: ALTER TABLE audit_events DROP CONSTRAINT audit_events_chk_1")
        return
    for name in _other_checks(op.get_bind()):
        if name == "outcome":  # MariaDB's column constraint: only MODIFY COLUMN drops it
            alter("audit_events", "MODIFY COLUMN outcome VARCHAR(20) NOT NULL", "INSTANT")
        else:
            alter("audit_events", f"DROP CONSTRAINT `{name}`", "INSTANT")


def _refuse_new_outcomes() -> None:
    """Before any DDL on MySQL, where a refusal after a change could not roll it back."""
    refuse_if_rows(
        "audit_events",
        "outcome NOT IN ('success', 'failure')",
        "have an outcome (denied, error) that revision 0006 does not allow",
    )


def _replace_check(values: tuple[str, ...], *, validate_after_commit: bool) -> None:
    if is_sqlite() and is_offline():
        rebuild_sqlite_table(_sqlite_audit_events(_check_sql(values)))
    elif is_sqlite():
        set_sqlite_check_in("audit_events", "outcome", values)
    elif validate_after_commit and not pg_online.in_external_transaction():
        _swap_check_alone(values)
    else:  # the downgrade, or inside a caller's transaction: the same statement, not committed
        pg_online.run(_swap_check_sql(values), "replace the outcome check", exclusive=True)
    if values == OLD_VALUES:
        refuse_if_rows(
            "audit_events",
            "outcome NOT IN ('success', 'failure')",
            "have an outcome (denied, error) that revision 0006 does not allow",
        )
    if not is_sqlite():
        _validate(separately=validate_after_commit)


def _swap_check_alone(values: tuple[str, ...]) -> None:
    """PostgreSQL upgrade: the old CHECK dropped and the new one added ``NOT VALID`` in one
    statement committed on its own (ACCESS EXCLUSIVE on ``audit_events`` for one catalog
    change, each attempt waiting at most pg_online's short lock wait; goose file 6 drops
    ``IF EXISTS`` and adds the same constraint, so a stop before the version is recorded is
    harmless)."""
    with pg_online.online_block():
        pg_online.run(_swap_check_sql(values), "replace the outcome check", exclusive=True)


def _swap_check_sql(values: tuple[str, ...]) -> str:
    """One statement: the old outcome CHECK dropped, the new one added ``NOT VALID`` (no scan)."""
    return (
        f"ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS {CHECK_NAME}, "
        f"ADD CONSTRAINT {CHECK_NAME} CHECK ({_check_sql(values)}) NOT VALID"
    )


def _validate(*, separately: bool) -> None:
    """``VALIDATE CONSTRAINT``, after committing the catalog change when ``separately``."""
    validate = f"ALTER TABLE audit_events VALIDATE CONSTRAINT {CHECK_NAME}"
    # A caller that runs the revision inside its own transaction cannot be committed for us.
    if separately and not pg_online.in_external_transaction():
        pg_online.boundary("outcome check replaced (NOT VALID)")
        # Its own transaction, with its own lock_timeout (a session setting: SET LOCAL
        # would end with the one-statement transaction of autocommit mode).
        with pg_online.online_block():
            pg_online.run(validate, "validate the outcome check", quick=False)
        pg_online.boundary("outcome check validated")
    else:
        op.execute(validate)


def _check_sql(values: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _sqlite_audit_events(check: str) -> sa.Table:
    optional_text = ("project_id", "request_id", "correlation_id", "client_ip", "method", "path", "user_agent")
    table = sa.Table(
        "audit_events",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True, nullable=True),  # as the service's DDL
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        *(sa.Column(name, sa.Text) for name in optional_text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.CheckConstraint(check),
    )
    for name, columns in INDEXES.items():
        sa.Index(name, *(table.c[column] for column in columns))
    return table


def postgresql_started(connection: sa.engine.Connection) -> list[str]:
    """0007's wider CHECK already committed at 0006 (a PostgreSQL run stopped before the version)."""
    checks = sa.inspect(connection).get_check_constraints("audit_events")
    wide = any(check["name"] == CHECK_NAME and "denied" in check["sqltext"] for check in checks)
    return [f"{CHECK_NAME} widened to {', '.join(NEW_VALUES)}"] if wide else []
