"""token surrogate id: tokens.id becomes the primary key; token stays UNIQUE (goose version 4)

PostgreSQL, online (the service keeps serving; no step holds ACCESS EXCLUSIVE on ``tokens``
for longer than a catalog change, every step under a short ``lock_timeout`` with retries):

1. ``ADD COLUMN id UUID`` (no default: no rewrite) and ``SET DEFAULT gen_random_uuid()`` in one
   statement: rows inserted from now on (the previous release's too) get an id;
2. existing rows are filled by walking the table's pages in ranges, one ``UPDATE`` per range
   in its own transaction, sized to take about 40 ms; rows the service moved during the walk
   are found and filled by a last pass (see ``pg_online.backfill``);
3. ``CHECK (id IS NOT NULL) NOT VALID``, ``VALIDATE`` (a scan under SHARE UPDATE EXCLUSIVE:
   reads and writes continue), ``SET NOT NULL`` (PostgreSQL 12+ trusts the validated check:
   no scan), the helper check dropped;
4. the unique indexes on ``id`` and ``token`` and ``idx_tokens_token`` built ``CONCURRENTLY``
   (an INVALID index left by a failed build is dropped and built again);
5. the primary key ``tokens_pkey`` and ``tokens_token_unique`` swapped in ``USING INDEX``
   (catalog only) in one ``ALTER TABLE`` committed on its own; the version table update
   follows in the revision's last transaction.

Every statement that takes ACCESS EXCLUSIVE waits at most 100 ms for it and is retried.
Steps 1-5 commit one by one and each checks whether it is done, so a run stopped anywhere
(killed, a lock timeout) is finished by the next.  The end state is the service's goose
version 4.  Inside a caller's own transaction (nothing may commit) the same end state is
reached in that one transaction.  SQLite cannot move a primary key in place: the table is
rebuilt with ``id`` TEXT, filled during the one copy with dashed UUID v4 strings computed
in SQL (offline ``--sql`` output adds and fills the column, then rebuilds).  MySQL/MariaDB,
online too (INSTANT column changes, batched fill, one ``ALGORITHM=INPLACE, LOCK=NONE``
rebuild) and resumable step by step: see :func:`mysql_upgrade_steps`.

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-11
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op
from llm_proxy_db.dialects.mysql_ddl import (
    Step,
    alter,
    alter_online,
    column_default,
    fill_in_batches,
    finish_online,
    has_column,
    has_index,
    has_null,
    is_nullable,
    online_done,
    primary_key,
    run_steps,
)
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.revision_helpers import (
    SQLITE_UUID4_SQL,
    copy_sqlite_table,
    is_mysql,
    is_offline,
    is_sqlite,
    rebuild_sqlite_table,
)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if is_sqlite() and is_offline():
        op.add_column("tokens", sa.Column("id", sa.Text))
        op.execute(f"UPDATE tokens SET id = {SQLITE_UUID4_SQL}")
        rebuild_sqlite_table(_sqlite_tokens(with_id=True))
        return
    if is_sqlite():
        copy_sqlite_table(_sqlite_tokens(with_id=True), computed={"id": SQLITE_UUID4_SQL})
        return
    if is_mysql():
        run_steps(mysql_upgrade_steps(), None if is_offline() else op.get_bind())
        return
    if pg_online.in_external_transaction():
        _pg_upgrade_in_one_transaction()
        return
    with pg_online.online_block():
        if _pg_keys_swapped():  # a run stopped after its last step: only the version is left
            return
        _pg_add_and_fill_id()
        _pg_prove_not_null()
        for name, create in PG_NEW_INDEXES.items():
            pg_online.ensure_index(name, create)
            pg_online.boundary(f"index {name}")
        _pg_swap_keys()
        pg_online.boundary("keys swapped")


# Built CONCURRENTLY under these names; the swap renames the first two to the constraints'.
PG_NEW_INDEXES = {
    "tokens_id_key_new": "CREATE UNIQUE INDEX CONCURRENTLY tokens_id_key_new ON tokens (id)",
    "tokens_token_unique_new": (
        "CREATE UNIQUE INDEX CONCURRENTLY tokens_token_unique_new ON tokens (token)"
    ),
    "idx_tokens_token": "CREATE INDEX CONCURRENTLY idx_tokens_token ON tokens (token)",
}
NOT_NULL_CHECK = "tokens_id_not_null"


def _pg_add_and_fill_id() -> None:
    """Steps 1-2: the column with its default for new rows, then existing rows in batches."""
    pg_online.run(
        "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS id UUID, "
        "ALTER COLUMN id SET DEFAULT gen_random_uuid()",
        "add tokens.id",
        exclusive=True,
    )
    pg_online.boundary("tokens.id added")
    if not _pg_id_is_not_null():
        pg_online.backfill("tokens", "id", "gen_random_uuid()", key="token")
    pg_online.boundary("tokens.id filled")


def _pg_prove_not_null() -> None:
    """Step 3: NOT NULL proven by a validated check, so SET NOT NULL does not scan under lock."""
    if not _pg_id_is_not_null():
        if not pg_online.constraint_exists("tokens", NOT_NULL_CHECK):
            pg_online.run(
                f"ALTER TABLE tokens ADD CONSTRAINT {NOT_NULL_CHECK} CHECK (id IS NOT NULL) NOT VALID",
                "add the NOT NULL check",
                exclusive=True,
            )
            pg_online.boundary("NOT NULL check added")
        pg_online.run(
            f"ALTER TABLE tokens VALIDATE CONSTRAINT {NOT_NULL_CHECK}", "validate", quick=False
        )
        pg_online.boundary("NOT NULL check validated")
        pg_online.run("ALTER TABLE tokens ALTER COLUMN id SET NOT NULL", "set NOT NULL", exclusive=True)
        pg_online.boundary("tokens.id NOT NULL")
    pg_online.run(
        f"ALTER TABLE tokens DROP CONSTRAINT IF EXISTS {NOT_NULL_CHECK}", "drop the check", exclusive=True
    )
    pg_online.boundary("NOT NULL check dropped")


def _pg_swap_keys() -> None:
    """Step 5: the constraints take over the built indexes, in one statement committed on its
    own (the ACCESS EXCLUSIVE lock, which the service's requests queue behind, is held for
    that statement's catalog change and its commit, nothing else); the version table is
    updated in the revision's last transaction."""
    pg_online.run(
        f"ALTER TABLE tokens DROP CONSTRAINT {_pg_primary_key_name()}, "
        "ADD CONSTRAINT tokens_pkey PRIMARY KEY USING INDEX tokens_id_key_new, "
        "ADD CONSTRAINT tokens_token_unique UNIQUE USING INDEX tokens_token_unique_new",
        "swap the keys of tokens",
        exclusive=True,
    )


def _pg_keys_swapped() -> bool:
    """Whether the primary key of ``tokens`` is already ``id`` (step 5 done)."""
    if pg_online.is_offline():
        return False
    return bool(
        pg_online.scalar(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'tokens'::regclass AND i.indisprimary AND a.attname = 'id'"
        )
    )


def _pg_id_is_not_null() -> bool:
    if pg_online.is_offline():
        return False
    return bool(
        pg_online.scalar(
            "SELECT attnotnull FROM pg_attribute "
            "WHERE attrelid = 'tokens'::regclass AND attname = 'id' AND NOT attisdropped"
        )
    )


def _pg_upgrade_in_one_transaction() -> None:
    """The same end state when nothing may commit: a rewrite under the caller's transaction."""
    op.add_column(
        "tokens",
        sa.Column("id", postgresql.UUID(as_uuid=False), server_default=sa.text("gen_random_uuid()")),
    )
    op.alter_column("tokens", "id", nullable=False)
    op.drop_constraint(_pg_primary_key_name(), "tokens", type_="primary")
    op.create_primary_key("tokens_pkey", "tokens", ["id"])
    op.create_unique_constraint("tokens_token_unique", "tokens", ["token"])
    op.create_index("idx_tokens_token", "tokens", ["token"])


def downgrade() -> None:
    if is_sqlite():  # the operator's own columns, indexes, triggers, views are kept
        rebuild_sqlite_table(_sqlite_tokens(with_id=False), drops=("id", "idx_tokens_token"))
        return
    if is_mysql():
        run_steps(_mysql_downgrade_steps(), None if is_offline() else op.get_bind())
        return
    op.drop_index("idx_tokens_token", table_name="tokens")
    op.drop_constraint("tokens_token_unique", "tokens", type_="unique")
    op.drop_constraint(_pg_primary_key_name(), "tokens", type_="primary")
    op.create_primary_key("tokens_pkey", "tokens", ["token"])
    op.drop_column("tokens", "id")


def mysql_upgrade_steps() -> list[Step]:
    """MySQL, as the service's MySQL file 4 (``CHAR(36)`` filled with ``UUID()``), resumable
    and online (the service reads and writes ``tokens`` throughout):

    1. ``ADD COLUMN id CHAR(36) NULL``, ``ALGORITHM=INSTANT`` (catalog only);
    2. ``SET DEFAULT (UUID())``, INSTANT: rows the service inserts from now on get an id;
    3. existing rows filled in batches (about 0.2 s of row locks each), each its own short
       transaction;
    4. one ``ALGORITHM=INPLACE, LOCK=NONE`` rebuild: ``id`` NOT NULL (its default dropped),
       ``tokens_token_unique`` added and the primary key moved from ``token`` to ``id``
       together, so ``token`` is never without a unique index and the table is rebuilt once.
    """
    return [
        Step(
            "add column tokens.id CHAR(36)",
            lambda c: has_column(c, "tokens", "id"),
            lambda: alter("tokens", "ADD COLUMN id CHAR(36) NULL", "INSTANT"),
        ),
        Step(
            "give tokens.id the default UUID() for rows inserted meanwhile",
            lambda c: _id_is_key(c) or "uuid" in (column_default(c, "tokens", "id") or "").lower(),
            lambda: alter("tokens", "ALTER COLUMN id SET DEFAULT (UUID())", "INSTANT"),
        ),
        Step(
            "fill tokens.id with UUID() in batches",
            lambda c: _id_is_key(c) or (has_column(c, "tokens", "id") and not has_null(c, "tokens", "id")),
            lambda: fill_in_batches("tokens", "id", "UUID()", key="token"),
        ),
        Step(
            "make tokens.id NOT NULL and the primary key; add tokens_token_unique",
            _id_is_key,
            _rebuild_with_id_key,
        ),
        Step("drop the old copy of tokens", lambda c: online_done(c, "tokens"), lambda: finish_online("tokens")),
    ]


def _id_is_key(connection: sa.engine.Connection) -> bool:
    return (
        primary_key(connection, "tokens") == ["id"]
        and has_index(connection, "tokens", "tokens_token_unique")
        and not is_nullable(connection, "tokens", "id")
        and column_default(connection, "tokens", "id") is None
    )


def _rebuild_with_id_key() -> None:
    """Step 4: whatever of the end state is missing, in one online rebuild."""
    bind = None if is_offline() else op.get_bind()
    clauses = ["MODIFY COLUMN id CHAR(36) NOT NULL"]
    if bind is None or not has_index(bind, "tokens", "tokens_token_unique"):
        clauses.append("ADD CONSTRAINT tokens_token_unique UNIQUE (token)")
    if bind is None or primary_key(bind, "tokens") != ["id"]:
        clauses.append("DROP PRIMARY KEY, ADD PRIMARY KEY (id)")
    # One server rebuilds online; under Galera's TOI the rebuild would block every node's
    # writes for its whole length, so a shadow copy keyed on ``token`` is used there.
    alter_online("tokens", "token", ", ".join(clauses), fallback=", ".join(clauses), algorithm="INPLACE")


def _mysql_downgrade_steps() -> list[Step]:
    return [
        Step(
            "move the primary key back from id to token",
            lambda c: primary_key(c, "tokens") == ["token"],
            lambda: op.execute("ALTER TABLE tokens DROP PRIMARY KEY, ADD PRIMARY KEY (token)"),
        ),
        Step(
            "drop constraint tokens_token_unique",
            lambda c: not has_index(c, "tokens", "tokens_token_unique"),
            lambda: op.drop_constraint("tokens_token_unique", "tokens", type_="unique"),
        ),
        Step(
            "drop column tokens.id",
            lambda c: not has_column(c, "tokens", "id"),
            lambda: op.drop_column("tokens", "id"),
        ),
    ]


def _pg_primary_key_name() -> str:
    """The live primary key's name (databases created elsewhere may not call it tokens_pkey)."""
    if is_offline():
        return "tokens_pkey"
    name = sa.inspect(op.get_bind()).get_pk_constraint("tokens").get("name")
    return name or "tokens_pkey"


def _sqlite_tokens(*, with_id: bool) -> sa.Table:
    """The SQLite tokens table after (``with_id``) or before this revision."""
    now = sa.text("CURRENT_TIMESTAMP")
    # Primary keys stay nullable on SQLite, as in the service's DDL.
    id_columns = [sa.Column("id", sa.Text, primary_key=True, nullable=True)] if with_id else []
    table = sa.Table(
        "tokens",
        sa.MetaData(),
        *id_columns,
        sa.Column("token", sa.Text, nullable=False, unique=True)
        if with_id
        else sa.Column("token", sa.Text, primary_key=True, nullable=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("deactivated_at", sa.DateTime),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=now),
        sa.Column("last_used_at", sa.DateTime),
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
    )
    if with_id:
        sa.Index("idx_tokens_token", table.c.token)
    sa.Index("idx_tokens_project_id", table.c.project_id)
    sa.Index("idx_tokens_expires_at", table.c.expires_at)
    sa.Index("idx_tokens_is_active", table.c.is_active)
    return table


def postgresql_started(connection: sa.engine.Connection) -> list[str]:
    """0005's first step already committed at 0004 (a PostgreSQL run stopped between its steps)."""
    names = {column["name"] for column in sa.inspect(connection).get_columns("tokens")}
    return ["tokens.id added (the later steps finish on a rerun)"] if "id" in names else []
