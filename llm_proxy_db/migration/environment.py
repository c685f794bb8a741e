"""What ``alembic/env.py`` runs: configure the migration context and run the revisions.

Every revision runs in its own transaction, on both dialects.  For SQLite this needs
``transactional_ddl=True`` (Alembic assumes SQLite cannot roll back DDL, which is only true
of Python's ``sqlite3`` defaults, switched off in :mod:`llm_proxy_db.database`).  SQLite
migrations run with foreign keys off, so a table rebuild never cascades, and each revision
checks ``PRAGMA foreign_key_check`` before it commits, unless none of its statements could
have broken a reference (see ``_ForeignKeyGuard``: on a million tokens each check costs a
full pass).

After each revision (and stamp), in its transaction, ``goose_db_version`` is brought in step
with the new revision (:func:`llm_proxy_db.service.goose.sync`), so the service's own goose runner
finds nothing to apply.

On PostgreSQL every migration transaction sets a ``lock_timeout`` (``LLM_PROXY_TABLE_LOCK_TIMEOUT``,
default 1s): a revision that cannot get a table lock fails and rolls back instead of waiting
behind a long transaction while every query of the service queues behind it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from llm_proxy_db.config.parsing import DEFAULT_TABLE_LOCK_TIMEOUT as DEFAULT_LOCK_TIMEOUT
from llm_proxy_db.config.parsing import TABLE_LOCK_TIMEOUT_ENV as LOCK_TIMEOUT_ENV
from llm_proxy_db.config.parsing import parse_pg_duration
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.config.waits import OWN_LOCK_TIMEOUT
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import LLMProxyDBError, MigrationError
from llm_proxy_db.schema.fingerprint import OUR_TABLES
from llm_proxy_db.schema.head import head_metadata
from llm_proxy_db.service import goose


def run_environment(context: Any) -> None:
    """Run migrations offline (``--sql``) or online, as Alembic asked."""
    config = context.config
    configure_logging(config)
    try:
        _run(context, config)
    except LLMProxyDBError as exc:
        if getattr(config, "cmd_opts", None) is None:
            raise
        # Run by the ``alembic`` command: its own error form, not a traceback.
        raise CommandError(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None


def configure_logging(config: Any) -> None:
    """The logging of ``alembic.ini`` (when Alembic was given one and nobody said otherwise)."""
    if config.config_file_name and config.attributes.get("configure_logger", True):
        fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(context: Any, config: Any) -> None:
    # Resolved from the environment only when needed: a live connection says it all (and
    # DB_DRIVER=postgres with the URL given as an option must not be read again here).
    settings: Settings | None = config.attributes.get("settings")
    if context.is_offline_mode():
        _run_offline(context, settings or resolve_settings())
        return
    connectable = config.attributes.get("connection")
    if connectable is not None and not isinstance(connectable, Connection):
        # An Engine (pytest-alembic's documented wiring) or an engine-like wrapper: connect.
        with connectable.connect() as engine_connection:
            _run_online(context, engine_connection)
            if isinstance(connectable, Engine):
                engine_connection.commit()
        return
    if connectable is not None:
        _run_online(context, connectable)
        return
    with connect(settings or resolve_settings(), foreign_keys=False, create=_may_create(config)) as own_connection:
        _run_online(context, own_connection)


def _may_create(config: Any) -> bool:
    """Only commands that write may create a missing SQLite file (``alembic current`` must not)."""
    cmd_opts = getattr(config, "cmd_opts", None)
    command = getattr(cmd_opts, "cmd", None)
    if not command:
        return True
    return getattr(command[0], "__name__", "") in _WRITING_COMMANDS


_WRITING_COMMANDS = frozenset({"upgrade", "downgrade", "stamp", "revision"})


def _run_offline(context: Any, settings: Settings) -> None:
    context.configure(
        dialect_name=settings.dialect_name,
        target_metadata=head_metadata(settings.dialect_name),
        literal_binds=True,
        transaction_per_migration=True,
        transactional_ddl=True,
        on_version_apply=[goose.on_version_apply],
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online(context: Any, connection: Connection) -> None:
    dialect = dialect_for(connection)
    guards = [_ForeignKeyGuard()] if dialect.FOREIGN_KEYS_OFF_WHILE_MIGRATING else []
    context.configure(
        connection=connection,
        target_metadata=head_metadata(dialect.SQLALCHEMY_NAME),
        transaction_per_migration=True,
        transactional_ddl=True,
        render_as_batch=dialect.BATCH_ALTER,
        compare_type=True,
        compare_server_default=True,
        include_name=_include_name,
        on_version_apply=[*guards, goose.on_version_apply],
    )
    for guard in guards:
        guard.watch(connection)
    try:
        with _limited_lock_waits(connection), context.begin_transaction():
            context.run_migrations()
    finally:
        for guard in guards:
            guard.stop(connection)


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate and ``alembic check`` compare our tables only: goose's version table,
    the adoption record and a user's own tables are not ours to drop."""
    return type_ != "table" or name in OUR_TABLES


def lock_timeout(env: Mapping[str, str] | None = None) -> str:
    """The PostgreSQL ``lock_timeout`` for migrations: ``LLM_PROXY_TABLE_LOCK_TIMEOUT`` or 1s.

    Accepts PostgreSQL's forms ``500ms``, ``5s``, ``1min`` or plain milliseconds; ``0``
    waits forever (PostgreSQL's default, not recommended while the service runs).
    """
    value = (os.environ if env is None else env).get(LOCK_TIMEOUT_ENV, "")
    return parse_pg_duration(LOCK_TIMEOUT_ENV, value) if value.strip() else DEFAULT_LOCK_TIMEOUT


@contextmanager
def _limited_lock_waits(connection: Connection) -> Iterator[None]:
    """Set ``lock_timeout`` in every transaction begun on a PostgreSQL ``connection``.

    ``SET LOCAL`` (``set_config(..., true)``) ends with the transaction, so the setting never
    leaks into a connection the caller reuses; the listener is removed afterwards.
    """
    if not dialect_for(connection).LOCK_TIMEOUT_RETRIES:
        yield
        return
    statement = sa.text("SELECT set_config('lock_timeout', :value, true)")
    params = {"value": lock_timeout()}

    def _on_begin(conn: Connection) -> None:
        conn.execute(statement, params)

    if connection.in_transaction():
        connection.execute(statement, params)
    event.listen(connection, "begin", _on_begin)
    connection.info[OWN_LOCK_TIMEOUT] = True  # the command-wide bound steps aside (dialects' waits)
    try:
        with _server_notices_a_lost_client(connection):
            yield
    finally:
        connection.info.pop(OWN_LOCK_TIMEOUT, None)
        event.remove(connection, "begin", _on_begin)


@contextmanager
def _server_notices_a_lost_client(connection: Connection) -> Iterator[None]:
    """PostgreSQL 14+: check the client every second while a statement runs.

    A killed migrator's backend then stops its work (and frees its locks) within about a
    second instead of when its statement ends.  The session's own value is restored after.
    """
    if connection.in_transaction() or (connection.dialect.server_version_info or (0,)) < (14,):
        yield  # a caller's own transaction is not ours to commit
        return
    setting = "client_connection_check_interval"
    saved = connection.exec_driver_sql(
        f"SELECT current_setting('{setting}'), set_config('{setting}', '1s', false)"
    ).scalar_one()
    connection.commit()
    try:
        yield
    finally:
        if not connection.closed and not connection.invalidated:
            connection.rollback()
            connection.execute(sa.text(f"SELECT set_config('{setting}', :v, false)"), {"v": saved})
            connection.commit()


_MAY_BREAK_REFERENCES = re.compile(
    r"\b(INSERT|UPDATE|DELETE|REPLACE|DROP|CREATE\s+TABLE|RENAME\s+TO|REFERENCES|writable_schema)\b",
    re.IGNORECASE,
)


class _ForeignKeyGuard:
    """``on_version_apply`` hook: refuse to commit a SQLite revision that left a dangling reference.

    With foreign keys off, a reference can only break through a statement that writes rows,
    drops, creates or renames a table, declares a reference or edits the schema text.  A
    revision that ran none of these (``ADD COLUMN`` without ``REFERENCES``, a column rename,
    an index) cannot have broken one and skips the full ``PRAGMA foreign_key_check``.  Its
    own version-table update does not count.
    """

    def __init__(self) -> None:
        self.risky = False

    def watch(self, connection: Connection) -> None:
        """Look at every statement run on ``connection`` from now on."""
        event.listen(connection, "before_cursor_execute", self._seen)

    def stop(self, connection: Connection) -> None:
        """Stop looking."""
        event.remove(connection, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "alembic_version" not in statement and _MAY_BREAK_REFERENCES.search(statement):
            self.risky = True

    def __call__(self, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        if self.risky:
            _check_foreign_keys(ctx.connection, step)
        self.risky = False


def _check_foreign_keys(connection: Connection, step: Any) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        sample = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in problems[:5])
        raise MigrationError(
            f"revision {step.up_revision_id if step.is_upgrade else step.down_revision_ids} "
            f"left {len(problems)} foreign key violation(s): {sample}",
            failed_revision=str(step.up_revision_id),
            hint="the revision was rolled back; list the rows with `sqlite3 FILE 'PRAGMA foreign_key_check'`",
        )
