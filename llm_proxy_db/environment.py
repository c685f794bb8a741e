"""What ``alembic/env.py`` runs: configure the migration context and run the revisions.

Every revision runs in its own transaction, on both dialects.  For SQLite this needs
``transactional_ddl=True`` (Alembic assumes SQLite cannot roll back DDL, which is only true
of Python's ``sqlite3`` defaults, switched off in :mod:`llm_proxy_db.database`).  SQLite
migrations run with foreign keys off, so a table rebuild never cascades, and each revision
checks ``PRAGMA foreign_key_check`` before it commits.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

from llm_proxy_db.database import connect
from llm_proxy_db.errors import LLMProxyDBError, MigrationError
from llm_proxy_db.fingerprint import OUR_TABLES
from llm_proxy_db.schema import head_metadata
from llm_proxy_db.settings import Settings, resolve_settings


def run_environment(context: Any) -> None:
    """Run migrations offline (``--sql``) or online, as Alembic asked."""
    config = context.config
    if config.config_file_name and config.attributes.get("configure_logger", True):
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    try:
        _run(context, config)
    except LLMProxyDBError as exc:
        if getattr(config, "cmd_opts", None) is None:
            raise
        # Run by the ``alembic`` command: its own error form, not a traceback.
        raise CommandError(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None


def _run(context: Any, config: Any) -> None:
    settings: Settings = config.attributes.get("settings") or resolve_settings()
    if context.is_offline_mode():
        _run_offline(context, settings)
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_online(context, connection)
        return
    with connect(settings, foreign_keys=False, create=_may_create(config)) as own_connection:
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
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online(context: Any, connection: Connection) -> None:
    dialect = connection.dialect.name
    sqlite = dialect == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=head_metadata(dialect),
        transaction_per_migration=True,
        transactional_ddl=True,
        render_as_batch=sqlite,
        compare_type=True,
        compare_server_default=True,
        include_name=_include_name,
        on_version_apply=[_check_foreign_keys] if sqlite else [],
    )
    with context.begin_transaction():
        context.run_migrations()


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate and ``alembic check`` compare our tables only: goose's version table,
    the adoption record and a user's own tables are not ours to drop."""
    return type_ != "table" or name in OUR_TABLES


def _check_foreign_keys(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Refuse to commit a SQLite revision that left a dangling foreign key."""
    problems = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        sample = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in problems[:5])
        raise MigrationError(
            f"revision {step.up_revision_id if step.is_upgrade else step.down_revision_ids} "
            f"left {len(problems)} foreign key violation(s): {sample}",
            failed_revision=str(step.up_revision_id),
        )
