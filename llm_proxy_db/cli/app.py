"""The ``llm-proxy`` command line: Typer wiring, rendering, and errors mapped to exit codes.

Every command body is one call into :mod:`llm_proxy_db.commands` plus rendering.  Any
:class:`~llm_proxy_db.errors.LLMProxyDBError` becomes one ``Error: ...`` line on stderr
(plus a hint) and the error's exit code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llm_proxy_db import commands, failures, verify
from llm_proxy_db.cli.render import (
    progress_printer,
    render_adoption,
    render_history,
    render_log,
    render_rehearsal,
    render_restore,
    render_run,
    render_status,
    stage_printer,
)
from llm_proxy_db.config.masking import mask_message
from llm_proxy_db.config.parsing import debug_enabled, env_settings, parse_count, parse_seconds
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError, LLMProxyDBError, MigrationError, VerificationError
from llm_proxy_db.safety import backup, rehearse

app = typer.Typer(
    name="llm-proxy",
    help="Schema migrations for the llm-proxy database (SQLite, PostgreSQL and MySQL/MariaDB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
migrate_app = typer.Typer(help="Move the schema between revisions and inspect it.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
db_app = typer.Typer(help="Back up and restore the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

F = TypeVar("F", bound=Callable[..., Any])

DbDriverOption = Annotated[
    str | None,
    typer.Option("--db-driver", help="sqlite, postgres or mysql (env DB_DRIVER; default sqlite)"),
]
DatabasePathOption = Annotated[
    str | None,
    typer.Option("--database-path", help="SQLite file (env DATABASE_PATH; default data/llm-proxy.db)"),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="postgres://user:pass@host:5432/db, or MySQL user:pass@tcp(host:3306)/db (env DATABASE_URL)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
SqlOption = Annotated[bool, typer.Option("--sql", help="Print the SQL for the dialect instead of running it.")]
BackupDirOption = Annotated[
    Path | None,
    typer.Option(
        "--backup-dir",
        help="Where backups go (env LLM_PROXY_BACKUP_DIR; default: beside the database).",
    ),
]
KeepBackupsOption = Annotated[
    int | None,
    typer.Option(
        "--keep-backups", help="Automatic backups to keep (env LLM_PROXY_KEEP_BACKUPS; default 5)."
    ),
]
NoBackupOption = Annotated[
    bool,
    typer.Option(
        "--no-backup",
        help="Migrate without the backup (SQLite's copy; a server's dump before a lossy downgrade). "
        "Not recommended.",
    ),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write the backup to this file.")]
LockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for another migrator (env LLM_PROXY_LOCK_TIMEOUT; default 300).",
    ),
]


@dataclass
class CliState:
    """The global options, resolved into settings only when a command needs a database."""

    db_driver: str | None = None
    database_path: str | None = None
    database_url: str | None = None

    def settings(self) -> Settings:
        """Settings from the global options, falling back to the environment."""
        return resolve_settings(self.db_driver, self.database_path, self.database_url)


def handles_errors(func: F) -> F:
    """Validate the environment up front, then turn every error into one readable answer.

    Library errors and known driver failures (:mod:`llm_proxy_db.failures`) become one
    ``Error: ...`` line, a hint and their exit code; with ``--json`` the same answer is also
    the one JSON object on stdout.  Only a really unknown failure is "unexpected" (exit 1).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            env_settings()  # every LLM_PROXY_* variable, refused here rather than later
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # a command's own exit code or usage error, not a crash
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            error = as_user_error(exc)
            if error is None:
                raise
            fail(error, as_json=bool(kwargs.get("as_json")))

    return wrapper  # type: ignore[return-value]


def as_user_error(exc: Exception) -> LLMProxyDBError | None:
    """The user-facing error for ``exc``; None only when LLM_PROXY_DEBUG asks for the traceback."""
    if isinstance(exc, LLMProxyDBError):
        return exc
    known = failures.translate(exc)
    if known is not None:
        return known
    if debug_enabled():
        return None
    return LLMProxyDBError(
        f"unexpected {type(exc).__name__}: {_scrub(exc)}",
        hint="rerun with LLM_PROXY_DEBUG=1 to see the traceback, and report it",
    )


def fail(error: LLMProxyDBError, *, as_json: bool = False) -> None:
    """Print ``error`` (stderr; with ``as_json`` also as the JSON object on stdout) and exit."""
    typer.echo(f"Error: {error.message}", err=True)
    if error.hint:
        typer.echo(f"Hint: {error.hint}", err=True)
    if as_json:
        typer.echo(error_json(error))
    raise typer.Exit(error.exit_code)


def error_json(error: LLMProxyDBError) -> str:
    """``{"error": {"message", "hint", "exit_code", "kind", ...}}`` for ``--json``."""
    return json.dumps({"error": error.as_dict()}, indent=2, default=str)


def _scrub(exc: BaseException) -> str:
    """The first line of an unexpected error, with every URL or DSN in it masked."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return mask_message(text[0]) if text else ""


def safety(
    backup_dir: Path | None, keep_backups: int | None, no_backup: bool, lock_timeout: float | None
) -> dict[str, Any]:
    """The safety-net options of a migrating command, validated, as keyword arguments for the library."""
    if no_backup and backup_dir is not None:
        raise ConfigError("--no-backup and --backup-dir contradict each other", hint="give only one of them")
    checked_numbers(keep_backups, lock_timeout)
    return {
        "backup_dir": backup_dir,
        "keep_backups": keep_backups,
        "no_backup": no_backup,
        "lock_timeout": lock_timeout,
    }


def checked_numbers(keep_backups: int | None, lock_timeout: float | None) -> None:
    """Refuse an out-of-range --keep-backups or a non-finite, negative or huge --lock-timeout."""
    if keep_backups is not None:
        parse_count("--keep-backups", keep_backups)
    if lock_timeout is not None:
        parse_seconds("--lock-timeout", lock_timeout)


def state(ctx: typer.Context) -> CliState:
    """The global options of this invocation."""
    return ctx.find_object(CliState) or CliState()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db_driver: DbDriverOption = None,
    database_path: DatabasePathOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Schema migrations for the llm-proxy database (SQLite, PostgreSQL and MySQL/MariaDB)."""
    ctx.obj = CliState(db_driver, database_path, database_url)


@app.command()
@handles_errors
def setup(
    ctx: typer.Context,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Create the data directory if needed and bring the database to the head revision.

    The startup path: one cheap read when already at head; LLM_PROXY_AUTO_MIGRATE=0 makes it
    check only (exit 10 when the database is behind).
    """
    settings = state(ctx).settings()
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.setup(settings, progress=progress_printer(), **options)
    typer.echo(f"database: {settings.describe()}")
    typer.echo(render_run(result))


@migrate_app.command("up")
@handles_errors
def migrate_up(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Target revision (default head).")] = "head",
    sql: SqlOption = False,
    start: Annotated[
        str | None, typer.Option("--from", help="With --sql: the revision to start from (default base).")
    ] = None,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Apply pending revisions up to --to (default head), under the lock, after a backup."""
    if start is not None and not sql:
        raise ConfigError("--from only applies with --sql", hint="add --sql to print the SQL, or drop --from")
    settings = state(ctx).settings()
    if sql:
        typer.echo(dialect_for(settings).OFFLINE_SCRIPT_PREAMBLE + commands.upgrade_sql(settings, to, start), nl=False)
        return
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    typer.echo(render_run(commands.upgrade(settings, to, progress=progress_printer(), **options)))


@migrate_app.command("down")
@handles_errors
def migrate_down(
    ctx: typer.Context,
    steps: Annotated[int | None, typer.Option("--steps", help="Revert this many revisions.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Revert to this revision, or base.")] = None,
    sql: SqlOption = False,
    start: Annotated[
        str | None, typer.Option("--from", help="With --sql: the revision to start from (default head).")
    ] = None,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
    allow_data_loss: Annotated[
        bool,
        typer.Option(
            "--allow-data-loss",
            help="Run a downgrade that drops data (refused with exit 11 otherwise); "
            "PostgreSQL is dumped first unless --no-backup.",
        ),
    ] = False,
) -> None:
    """Revert revisions: --steps N or --to REV (one of the two).

    A downgrade that would lose data lists what it would lose and exits 11, changing
    nothing, unless --allow-data-loss is given.
    """
    if (steps is None) == (to is None):
        raise ConfigError("give exactly one of --steps N or --to REV")
    if start is not None and not sql:
        raise ConfigError("--from only applies with --sql", hint="add --sql to print the SQL, or drop --from")
    settings = state(ctx).settings()
    if sql:
        if to is None:
            raise ConfigError("--sql needs --to REV (there is no database to count steps from)")
        script = commands.downgrade_sql(settings, to, start or "head")
        typer.echo(dialect_for(settings).OFFLINE_SCRIPT_PREAMBLE + script, nl=False)
        return
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.downgrade(
        settings, to, steps=steps, progress=progress_printer(), allow_data_loss=allow_data_loss,
        **options,
    )
    typer.echo(render_run(result))


@migrate_app.command("status")
@handles_errors
def migrate_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the current revision, the head revision and what is pending."""
    current = commands.status(state(ctx).settings())
    typer.echo(json.dumps(current.as_dict(), indent=2) if as_json else render_status(current))


@migrate_app.command("adopt")
@handles_errors
def migrate_adopt(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Revision to migrate to after adoption (default head).")] = "head",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the detected state and the plan; change nothing.")
    ] = False,
    force_stamp: Annotated[
        str | None,
        typer.Option(
            "--force-stamp",
            metavar="REV",
            help="RISKY: record REV without verifying the schema (see docs/adoption.md).",
        ),
    ] = None,
    as_json: JsonOption = False,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Adopt a database without alembic_version: verify its schema, stamp it, migrate it.

    Runs under the migration lock, after a backup, like migrate up."""
    settings = state(ctx).settings()
    if force_stamp and not dry_run:
        planned = commands.adopt(settings, to, dry_run=True, force_stamp=force_stamp)
        _warn(planned.plan.warnings)
    progress = None if dry_run else progress_printer()
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.adopt(
        settings, to, dry_run=dry_run, force_stamp=force_stamp, progress=progress, **options
    )
    if dry_run:
        _warn(result.plan.warnings)
    typer.echo(json.dumps(result.plan.as_dict(), indent=2) if as_json else render_adoption(result))


def _warn(warnings: tuple[str, ...]) -> None:
    for line in warnings:
        typer.echo(f"WARNING: {line}", err=True)


@migrate_app.command("history")
@handles_errors
def migrate_history(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every revision, oldest first, with whether and when the database got it."""
    revisions = commands.history(state(ctx).settings())
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in revisions], indent=2))
    else:
        typer.echo(render_history(revisions))


@migrate_app.command("log")
@handles_errors
def migrate_log(
    ctx: typer.Context,
    as_json: JsonOption = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Show only the newest N runs.")] = None,
) -> None:
    """List the runs recorded on the database, oldest first.

    Revisions applied and reverted, adoptions, forced stamps, restores.  Reads only."""
    entries = commands.log(state(ctx).settings(), limit)
    if as_json:
        typer.echo(json.dumps([entry.as_dict() for entry in entries], indent=2))
    else:
        typer.echo(render_log(entries))


@migrate_app.command("verify")
@handles_errors
def migrate_verify(
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            help="Also cycle the chain on a scratch database created (and dropped) on this "
            "PostgreSQL server.",
        ),
    ] = None,
    mysql_url: Annotated[
        str | None,
        typer.Option(
            "--mysql-url",
            help="Also cycle the chain on a scratch database created (and dropped) on this "
            "MySQL/MariaDB server (mysql:// URL or the service's DSN).",
        ),
    ] = None,
) -> None:
    """Check the revision chain, its manifest, a base->head->base->head cycle and offline SQL.

    The configured database is never used: the cycles run on scratch databases.
    """
    problems = verify.verify(postgres_url=postgres_url, mysql_url=mysql_url, progress=stage_printer())
    _report_problems(problems, "migrate verify", "the revision chain is sound")


@migrate_app.command("manifest")
@handles_errors
def migrate_manifest(
    update: Annotated[
        bool, typer.Option("--update", help="Append new revisions to the manifest.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --update: also rewrite entries of released revisions."),
    ] = False,
) -> None:
    """Check the checksum manifest of the revision files, or append new revisions to it."""
    if force and not update:
        raise ConfigError("--force only makes sense with --update")
    if not update:
        problems = verify.manifest_problems()
        _report_problems(problems, "the manifest check", "the manifest is current")
        return
    typer.echo(verify.update_manifest(force=force).describe())


def _report_problems(problems: list[str], what: str, success: str) -> None:
    for line in problems:
        typer.echo(f"FAIL {line}")
    if problems:
        raise VerificationError(f"{what} found {len(problems)} problem(s)")
    typer.echo(f"OK {success}")


@migrate_app.command("rehearse")
@handles_errors
def migrate_rehearse(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Target revision (default head).")] = "head",
    as_json: JsonOption = False,
) -> None:
    """Run the pending revisions on a throw-away copy of the database, then delete the copy."""
    progress = None if as_json else progress_printer()
    result = rehearse.rehearse(state(ctx).settings(), to, progress=progress)
    typer.echo(json.dumps(result.as_dict(), indent=2) if as_json else render_rehearsal(result))
    if not result.ok:
        raise typer.Exit(MigrationError.exit_code)


@db_app.command("backup")
@handles_errors
def db_backup(
    ctx: typer.Context,
    out: OutOption = None,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
) -> None:
    """Back the database up now (SQLite: a checked copy; PostgreSQL: pg_dump; MySQL: mariadb-dump)."""
    checked_numbers(keep_backups, None)
    path = backup.backup(state(ctx).settings(), out, backup_dir=backup_dir, keep=keep_backups)
    typer.echo(f"backup: {path}")


@db_app.command("restore")
@handles_errors
def db_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A backup from llm-proxy db backup or a migration.")],
    backup_dir: BackupDirOption = None,
    lock_timeout: LockTimeoutOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="SQLite: restore a backup taken of another database; PostgreSQL/MySQL: replace "
            "a database that is not empty (its contents are dumped first). Refused otherwise.",
        ),
    ] = False,
) -> None:
    """Replace the database's contents with FILE, keeping a safety copy of the current ones.

    SQLite: a backup file, restored in place. PostgreSQL: a pg_dump file (pg_restore).
    MySQL/MariaDB: a mariadb-dump/mysqldump file (mariadb/mysql client)."""
    checked_numbers(None, lock_timeout)
    settings = state(ctx).settings()
    progress = progress_printer()
    result = backup.restore(
        settings, file, backup_dir=backup_dir, lock_timeout=lock_timeout, progress=progress, force=force
    )
    typer.echo(render_restore(result))


def main() -> None:
    """Run the full command line (the ``llm-proxy`` script enters via :func:`fast_path.main`).

    Click's own usage errors (an unknown option, ``--keep-backups abc``) exit 2 as usual; with
    ``--json`` among the arguments they are also printed as the JSON error object.
    """
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        exit_code = int(getattr(exc, "exit_code", 2))
        exc.show()  # type: ignore[attr-defined]
        if "--json" in sys.argv[1:]:
            usage = ConfigError(exc.format_message(), hint="see --help")
            usage.exit_code = exit_code
            typer.echo(error_json(usage))
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _terminated(signum: int, _frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C: every cleanup of the run (temporary copies, scratch
    databases, child processes such as pg_restore) runs before the process exits."""
    raise SystemExit(128 + signum)
