"""Small helpers the revision scripts share, so each script says only what changed.

Revision scripts stay frozen snapshots of a shipped change: they define the tables they
rebuild themselves and never import the head schema.  What they share is mechanism:
which dialect runs, whether a column exists (to mirror the guards the service's own goose
files had), SQLite table rebuilds through Alembic's batch mode, SQLite CHECK changes made
in place (no row copied), and UUIDs made in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from alembic import context, op
from llm_proxy_db.dialects.mysql import ddl as mysql_ddl
from llm_proxy_db.dialects.sqlite.base import SQLITE_UUID4_SQL  # noqa: F401 (the revisions import it from here)
from llm_proxy_db.errors import MigrationError
from llm_proxy_db.migration import pg_online, sqlite_keep
from llm_proxy_db.migration.offline import is_offline


def dialect_name() -> str:
    """``sqlite``, ``postgresql`` or ``mysql``, online or offline."""
    return str(context.get_context().dialect.name)


def is_sqlite() -> bool:
    """True when the revision runs against SQLite."""
    return dialect_name() == "sqlite"


def is_postgresql() -> bool:
    """True when the revision runs against PostgreSQL."""
    return dialect_name() == "postgresql"


def is_mysql() -> bool:
    """True when the revision runs against MySQL or MariaDB (DDL is not transactional there)."""
    return dialect_name() == "mysql"


# Column types that differ on MySQL only, as the service's MySQL files spell them: keys are
# VARCHAR(191) (an index on utf8mb4 VARCHAR(255) would exceed old InnoDB's 767-byte limit),
# timestamps DATETIME(6).  Other dialects get the type before ``with_variant``.
MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def key_type() -> sa.types.TypeEngine[str]:
    """TEXT, or VARCHAR(191) on MySQL: primary keys and the columns that refer to them."""
    return sa.Text().with_variant(sa.String(191), "mysql")


def text_type(mysql_length: int | None = None) -> sa.types.TypeEngine[str]:
    """TEXT, or VARCHAR(mysql_length) on MySQL when a length is given."""
    return sa.Text().with_variant(sa.String(mysql_length), "mysql") if mysql_length else sa.Text()


def timestamp_type() -> sa.types.TypeEngine[Any]:
    """DATETIME/TIMESTAMP, or DATETIME(6) on MySQL (whose dialect is imported only there)."""
    if not is_mysql():
        return sa.DateTime()
    from sqlalchemy.dialects import mysql

    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def now_default(*, on_update: bool = False) -> sa.TextClause:
    """``CURRENT_TIMESTAMP``; on MySQL ``CURRENT_TIMESTAMP(6)``, with ``ON UPDATE`` when asked."""
    if not is_mysql():
        return sa.text("CURRENT_TIMESTAMP")
    return sa.text("CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)" if on_update else "CURRENT_TIMESTAMP(6)")


def has_column(table: str, column: str) -> bool:
    """Whether ``table.column`` exists now; offline, the canonical chain is assumed (False)."""
    if is_offline():
        return False
    columns = sa.inspect(op.get_bind()).get_columns(table)
    return any(info["name"] == column for info in columns)


def add_column_if_missing(table: str, column: sa.Column) -> None:
    """``ADD COLUMN`` unless the column is already there (the goose files' ``IF NOT EXISTS``).

    On MySQL the column goes last with ``ALGORITHM=INSTANT``: a catalog change, no copy.
    """
    if has_column(table, column.name):
        return
    if is_mysql():
        spec = sa.schema.CreateColumn(column).compile(dialect=context.get_context().dialect)
        mysql_ddl.alter(table, f"ADD COLUMN {spec}", "INSTANT")
        return
    op.add_column(table, column)


def drop_column_if_present(table: str, column: str) -> None:
    """``DROP COLUMN``; on MySQL only when the column is still there (a rerun after a failure).

    On PostgreSQL (online) the ACCESS EXCLUSIVE lock is waited for at most pg_online's short
    lock wait per attempt, retried, so the service never queues behind it for long.
    """
    if is_mysql() and not is_offline() and not has_column(table, column):
        return
    if is_postgresql() and not is_offline():
        pg_online.run(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}", f"drop {table}.{column}", exclusive=True)
        return
    op.drop_column(table, column)


def rebuild_sqlite_table(table: sa.Table, drops: Collection[str] = ()) -> None:
    """Rebuild a SQLite table into ``table``'s definition, copying rows column by column.

    Online this is :func:`copy_sqlite_table` with nothing computed, so the operator's own
    columns, indexes, triggers and views are kept (:mod:`llm_proxy_db.migration.sqlite_keep`); ``drops``
    names the columns and indexes the revision itself removes.  Offline (``--sql``) the live
    table cannot be read: Alembic's batch mode renders the rebuild of ``table`` as defined,
    which carries nothing else over (docs/operations.md says so).  The migration connection
    runs with foreign keys off (so dropping a parent does not cascade) and the environment
    checks ``PRAGMA foreign_key_check`` before the revision commits.
    """
    if not is_offline():
        copy_sqlite_table(table, computed={}, drops=drops)
        return
    with op.batch_alter_table(table.name, copy_from=table, recreate="always"):
        pass


def copy_sqlite_table(
    table: sa.Table, computed: Mapping[str, str], drops: Collection[str] = ()
) -> None:
    """Rebuild a SQLite table like :func:`rebuild_sqlite_table`, computing new columns in the copy.

    Alembic's batch copy can only carry existing columns over, so a new column filled by an
    expression (a UUID per row) would cost an ``UPDATE`` of every row before the copy: two
    passes over the table.  This does the same steps as batch mode (new table, ``INSERT ...
    SELECT``, drop, rename, indexes) with ``computed`` (column name -> SQL expression over
    the old row) evaluated by the one ``INSERT ... SELECT``.  Every other column of
    ``table`` must exist in the old table.  What the live table has beyond ``table`` (and
    ``drops``) is kept or refused before any change: see :mod:`llm_proxy_db.migration.sqlite_keep`.
    """
    bind = op.get_bind()
    kept = sqlite_keep.survey(bind, table, drops)
    temp = _temp_table(table, kept)
    sqlite_keep.drop_dependents(bind, kept)
    temp.create(bind)
    names = [column.name for column in temp.columns]
    values: list[sa.ColumnElement[object]] = [
        sa.literal_column(computed[n]) if n in computed else sa.column(n) for n in names
    ]
    source = sa.select(*values).select_from(sa.table(table.name))
    bind.execute(temp.insert().from_select(names, source))
    op.drop_table(table.name)
    op.rename_table(temp.name, table.name)
    for index in table.indexes:
        columns = [column.name for column in index.columns]
        op.create_index(index.name, table.name, columns, unique=bool(index.unique))
    sqlite_keep.restore(bind, table.name, kept)


def _temp_table(table: sa.Table, kept: sqlite_keep.Kept) -> sa.Table:
    """``table`` plus the kept columns, named ``_alembic_tmp_<name>``, without indexes."""
    metadata = sa.MetaData()
    for key in table.foreign_keys:  # stubs, so the new table's FOREIGN KEY clauses render
        target, column = key.target_fullname.split(".")
        stub = metadata.tables.get(target) or sa.Table(target, metadata)
        if column not in stub.c:
            stub.append_column(sa.Column(column, sa.Text))
    temp = table.to_metadata(metadata, name=f"_alembic_tmp_{table.name}")
    temp.indexes.clear()
    for extra in kept.columns:
        temp.append_column(extra._copy())
    return temp


def refuse_if_rows(table: str, where: str, why: str) -> None:
    """Stop a downgrade that would have to drop or break rows; the revision rolls back."""
    if is_offline():
        return
    count = op.get_bind().execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar()
    if count:
        raise MigrationError(f"{count} row(s) in {table} {why}; refusing to downgrade")


def set_sqlite_check_in(table: str, column: str, values: Sequence[str]) -> None:
    """Make ``CHECK (column IN (...))`` of a SQLite table allow exactly ``values``, in place.

    A CHECK constraint does not change a stored byte, so instead of copying the table this
    follows SQLite's documented procedure for "other kinds of table schema changes"
    (https://www.sqlite.org/lang_altertable.html#otheralter): with ``writable_schema`` on,
    rewrite the table's SQL text in ``sqlite_master`` and increment ``schema_version`` so
    every connection reloads the schema.  It runs inside the revision's transaction, so a
    failure rolls the text back.  The cost is independent of the number of rows.

    Rows are not re-checked: callers narrowing the set must first make sure no row
    violates it (see :func:`refuse_if_rows`).  Refuses unless the table's SQL holds
    exactly one such CHECK.
    """
    bind = op.get_bind()
    old_sql = _sqlite_table_sql(bind, table)
    new_sql = replace_check_in(old_sql, column, values, table=table)
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (new_sql, table)
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    # Parsing the new schema happens on the next statement; a bad text fails here, in the
    # transaction, instead of on the service's next start.
    bind.exec_driver_sql(f'SELECT * FROM "{table}" LIMIT 0')
    if _sqlite_table_sql(bind, table) != new_sql:
        raise MigrationError(f"SQLite did not keep the new definition of {table}")


def replace_check_in(sql: str, column: str, values: Sequence[str], *, table: str = "table") -> str:
    """``sql`` (a CREATE TABLE text) with its one ``CHECK (column IN (...))`` listing ``values``."""
    pattern = re.compile(
        r"CHECK\s*\(\s*[\"`\[]?" + re.escape(column) + r"[\"`\]]?\s+IN\s*\([^()]*\)\s*\)",
        re.IGNORECASE,
    )
    matches = list(pattern.finditer(sql))
    if len(matches) != 1:
        raise MigrationError(
            f"expected exactly one CHECK ({column} IN (...)) in the definition of {table}, "
            f"found {len(matches)}; its SQL is: {sql}"
        )
    listed = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    match = matches[0]
    return f"{sql[: match.start()]}CHECK ({column} IN ({listed})){sql[match.end() :]}"


def _sqlite_table_sql(bind: sa.engine.Connection, table: str) -> str:
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    if sql is None:
        raise MigrationError(f"table {table} does not exist")
    return str(sql)
