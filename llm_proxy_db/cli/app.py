"""The ``llm-proxy-db`` command line: Typer wiring, rendering, and errors mapped to exit codes.

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
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from llm_proxy_db import failures
from llm_proxy_db.cli import json_log, streams
from llm_proxy_db.cli.render import (
    render_adoption,
    render_history,
    render_log,
    render_rehearsal,
    render_restore,
    render_run,
    render_status,
    render_upgrade_plan,
)
from llm_proxy_db.cli.render_drift import render_drift
from llm_proxy_db.cli.version import version_line
from llm_proxy_db.config.masking import mask_message
from llm_proxy_db.config.parsing import debug_enabled, env_settings, parse_keep_backups, parse_seconds
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import (
    ConfigError,
    Interrupted,
    LLMProxyDBError,
    MigrationError,
    VerificationError,
    signal_of,
)

if TYPE_CHECKING:
    from llm_proxy_db import commands, verify
    from llm_proxy_db.safety import backup, rehearse
else:  # Alembic and SQLAlchemy load when a command body runs: --help starts in a third of the time
    from llm_proxy_db.cli.lazy import lazy_module

    commands = lazy_module("llm_proxy_db.commands")
    verify = lazy_module("llm_proxy_db.verify")
    backup = lazy_module("llm_proxy_db.safety.backup")
    rehearse = lazy_module("llm_proxy_db.safety.rehearse")

# Plain (Click-style) help: flags shown as flags whatever Typer's rich renderer does
# (typer 0.29 prints "--json <bool>"), and no rich import for --help (tests/test_help_screens.py).
PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None, "no_args_is_help": True}
app = typer.Typer(
    name="llm-proxy-db",
    help="Schema migrations for the llm-proxy database (SQLite, PostgreSQL and MySQL/MariaDB).",
    add_completion=False,
    pretty_exceptions_enable=False,
    **PLAIN_HELP,
)
migrate_app = typer.Typer(help="Move the schema between revisions and inspect it.", **PLAIN_HELP)
app.add_typer(migrate_app, name="migrate")
db_app = typer.Typer(help="Back up and restore the database.", **PLAIN_HELP)
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
        help="postgres://user:pass@host:5432/db, or MySQL user:pass@tcp(host:3306)/db "
        "(env DATABASE_URL, or DATABASE_URL_FILE: a file holding it)",
    ),
]
DirectUrlOption = Annotated[
    str | None,
    typer.Option(
        "--direct-url",
        help="A direct connection to the primary for schema changes, locks and dumps, when "
        "DATABASE_URL is a pooler's (env LLM_PROXY_DIRECT_URL)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
SqlOption = Annotated[bool, typer.Option("--sql", help="Print the SQL for the dialect instead of running it.")]
BackupDirOption = Annotated[
    Path | None,
    typer.Option(
        "--backup-dir",
        help="Where backups go (env LLM_PROXY_BACKUP_DIR; default: beside a SQLite database, "
        "~/.local/state/llm-proxy-db/backups for a server's dumps).",
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
    direct_url: str | None = None

    def settings(self) -> Settings:
        """Settings from the global options, falling back to the environment."""
        return resolve_settings(self.db_driver, self.database_path, self.database_url, direct_url=self.direct_url)


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
        except (KeyboardInterrupt, SystemExit) as exc:  # a signal outside a revision
            signal = signal_of(exc)
            if signal is None:
                raise
            fail(interrupted(signal), as_json=bool(kwargs.get("as_json")))
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            error = as_user_error(exc)
            if error is None:
                raise
            fail(error, as_json=bool(kwargs.get("as_json")))

    return wrapper  # type: ignore[return-value]


SIGNAL_NAMES = {2: "SIGINT", 15: "SIGTERM"}


def interrupted(signal: int) -> Interrupted:
    """The answer to a signal that stopped a command outside a revision (one inside a revision
    is the executor's :class:`~llm_proxy_db.errors.MigrationInterrupted`, which says more)."""
    name = SIGNAL_NAMES.get(signal, f"signal {signal}")
    return Interrupted(
        f"interrupted by {name} before the command finished; its cleanup ran (temporary files "
        "removed, child processes stopped)",
        signal=signal,
        hint="`llm-proxy-db migrate status` shows where the database is (a revision left part-way is "
        "named there); run the command again",
    )


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


# The last resort when an error reaches the user without a hint of its own (every raise in the
# package names one: tests/test_error_hints.py); keyed by exit code.
FALLBACK_HINTS = {
    2: "see `llm-proxy-db --help` and docs/cli.md for the options and variables",
    3: "check the database path or URL, the server, and this user's rights",
    4: "see docs/troubleshooting.md (a failed revision); `migrate status` shows where the database is",
    5: "`migrate history` lists the revisions this release knows",
    6: "`migrate adopt --dry-run` shows the differences; nothing was changed",
    7: "another migrator holds the lock: wait, or raise --lock-timeout",
    8: "see docs/troubleshooting.md (restoring a backup); no migration ran without its backup",
    9: "see docs/migration-workflow.md",
    10: "run `llm-proxy-db setup` with LLM_PROXY_AUTO_MIGRATE unset to migrate",
    11: "export what you need, then run again with --allow-data-loss",
}


def fail(error: LLMProxyDBError, *, as_json: bool = False) -> None:
    """Print ``error`` (stderr; with ``as_json`` also as the JSON object on stdout) and exit.

    Every error ends with one ``Hint:`` line: its own, else the fallback for its exit code; with
    ``LLM_PROXY_LOG_FORMAT=json`` the two lines are one JSON log line instead."""
    if not error.hint:
        error.hint = FALLBACK_HINTS.get(error.exit_code, "rerun with LLM_PROXY_DEBUG=1 and report it")
    if json_log.json_logs():
        json_log.log_message("error", error.message, event="error", hint=error.hint, exit_code=error.exit_code)
    else:
        typer.echo(f"Error: {error.message}", err=True)
        typer.echo(f"Hint: {error.hint}", err=True)
    if as_json:
        typer.echo(error_json(error))
    raise typer.Exit(error.exit_code)


def error_json(error: LLMProxyDBError) -> str:
    """``{"error": {"message", "hint", "exit_code", "kind", ...}}`` for ``--json``."""
    return json.dumps({"error": error.as_dict()}, indent=2, default=str)


def emit(value: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    """The one output of a command: ``value`` as JSON (``--json``), else ``text`` for people."""
    if as_json:
        typer.echo(json.dumps(value, indent=2, default=str))
    else:
        typer.echo(text() if callable(text) else text)


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
        parse_keep_backups("--keep-backups", keep_backups)
    if lock_timeout is not None:
        parse_seconds("--lock-timeout", lock_timeout)


def state(ctx: typer.Context) -> CliState:
    """The global options of this invocation."""
    return ctx.find_object(CliState) or CliState()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line(), nl=False)
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db_driver: DbDriverOption = None,
    database_path: DatabasePathOption = None,
    database_url: DatabaseUrlOption = None,
    direct_url: DirectUrlOption = None,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Schema migrations for the llm-proxy database (SQLite, PostgreSQL and MySQL/MariaDB)."""
    ctx.obj = CliState(db_driver, database_path, database_url, direct_url)


@app.command()
@handles_errors
def setup(
    ctx: typer.Context,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the data directory if needed and bring the database to the head revision.

    The startup path: one cheap read when already at head; LLM_PROXY_AUTO_MIGRATE=0 makes it
    check only (exit 10 when the database is behind).
    """
    settings = state(ctx).settings()
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.setup(settings, progress=json_log.progress(), **options)
    data = {"database": settings.describe(), **result.as_dict()}
    emit(data, as_json, lambda: f"database: {settings.describe()}\n{render_run(result)}")


@migrate_app.command("up")
@handles_errors
def migrate_up(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Target revision (default head).")] = "head",
    sql: SqlOption = False,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="With --sql: the revision to start from (default: the database's current "
            "revision when it can be read, else base).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (revisions, locks and expected time, rows to rewrite, backup "
            "size); change nothing.",
        ),
    ] = False,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    no_backup: NoBackupOption = False,
    lock_timeout: LockTimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply pending revisions up to --to (default head), under the lock, after a backup."""
    if start is not None and not sql:
        raise ConfigError("--from only applies with --sql", hint="add --sql to print the SQL, or drop --from")
    if sql and dry_run:
        raise ConfigError("--sql and --dry-run contradict each other", hint="give only one of them")
    settings = state(ctx).settings()
    if sql:
        if start is None:
            start, said = commands.offline_start(settings)
            _say(said)
        _print_sql(settings, commands.upgrade_sql(settings, to, start), as_json)
        return
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    if dry_run:
        plan = commands.upgrade_plan(settings, to, backup_dir=backup_dir, no_backup=no_backup)
        emit(plan.as_dict(), as_json, lambda: render_upgrade_plan(plan))
        return
    result = commands.upgrade(settings, to, progress=json_log.progress(), **options)
    emit({"database": settings.describe(), **result.as_dict()}, as_json, lambda: render_run(result))


def _say(message: str) -> None:
    """One message on stderr: a line of text, or a JSON log line."""
    if json_log.json_logs():
        json_log.log_message("info", message)
    else:
        typer.echo(message, err=True)


def _print_sql(settings: Settings, script: str, as_json: bool) -> None:
    """An offline script: as it is, or ``{"dialect", "sql"}`` with ``--json``."""
    script = dialect_for(settings).OFFLINE_SCRIPT_PREAMBLE + script
    if as_json:
        emit({"dialect": settings.dialect_name, "sql": script}, True, "")
    else:
        typer.echo(script, nl=False)


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
    as_json: JsonOption = False,
) -> None:
    """Revert revisions: --steps N or --to REV (one of the two).

    A downgrade that would lose data lists what it would lose and exits 11, changing
    nothing, unless --allow-data-loss is given.
    """
    if (steps is None) == (to is None):
        raise ConfigError(
            "give exactly one of --steps N or --to REV",
            hint="e.g. `migrate down --steps 1` or `migrate down --to 0006`",
        )
    if start is not None and not sql:
        raise ConfigError("--from only applies with --sql", hint="add --sql to print the SQL, or drop --from")
    settings = state(ctx).settings()
    if sql:
        if to is None:
            raise ConfigError(
                "--sql needs --to REV (there is no database to count steps from)",
                hint="e.g. `migrate down --sql --to 0006`",
            )
        _print_sql(settings, commands.downgrade_sql(settings, to, start or "head"), as_json)
        return
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.downgrade(
        settings, to, steps=steps, progress=json_log.progress(), allow_data_loss=allow_data_loss,
        **options,
    )
    emit({"database": settings.describe(), **result.as_dict()}, as_json, lambda: render_run(result))


@migrate_app.command("status")
@handles_errors
def migrate_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the current revision, the head revision and what is pending."""
    current = commands.status(state(ctx).settings())
    emit(current.as_dict(), as_json, lambda: render_status(current))


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
    progress = None if dry_run else json_log.progress()
    options = safety(backup_dir, keep_backups, no_backup, lock_timeout)
    result = commands.adopt(
        settings, to, dry_run=dry_run, force_stamp=force_stamp, progress=progress, **options
    )
    if dry_run:
        _warn(result.plan.warnings)
    data = {**result.plan.as_dict(), "run": result.run.as_dict() if result.run is not None else None}
    emit(data, as_json, lambda: render_adoption(result))


def _warn(warnings: tuple[str, ...]) -> None:
    for line in warnings:
        if json_log.json_logs():
            json_log.log_message("warning", line)
        else:
            typer.echo(f"WARNING: {line}", err=True)


@migrate_app.command("history")
@handles_errors
def migrate_history(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every revision, oldest first, with whether and when the database got it."""
    revisions = commands.history(state(ctx).settings())
    emit([info.as_dict() for info in revisions], as_json, lambda: render_history(revisions))


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
    emit([entry.as_dict() for entry in entries], as_json, lambda: render_log(entries))


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
    as_json: JsonOption = False,
) -> None:
    """Check the revision chain, its manifest, a base->head->base->head cycle and offline SQL.

    The configured database is never used: the cycles run on scratch databases.
    """
    problems = verify.verify(postgres_url=postgres_url, mysql_url=mysql_url, progress=json_log.stages())
    _report_problems(problems, "migrate verify", "the revision chain is sound", as_json)


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
    as_json: JsonOption = False,
) -> None:
    """Check the checksum manifest of the revision files, or append new revisions to it."""
    if force and not update:
        raise ConfigError("--force only makes sense with --update", hint="use `migrate manifest --update --force`")
    if not update:
        problems = verify.manifest_problems()
        _report_problems(problems, "the manifest check", "the manifest is current", as_json)
        return
    updated = verify.update_manifest(force=force)
    emit(updated.as_dict(), as_json, updated.describe)


def _report_problems(problems: list[str], what: str, success: str, as_json: bool = False) -> None:
    """``FAIL ...`` lines and exit 9, or ``OK ...``; with ``--json`` one ``{"ok", "problems"}`` object."""
    if as_json:
        emit({"ok": not problems, "problems": problems}, True, "")
    else:
        for line in problems:
            typer.echo(f"FAIL {line}")
    if problems:
        error = VerificationError(
            f"{what} found {len(problems)} problem(s)",
            hint="each FAIL line names one; see docs/migration-workflow.md",
        )
        if as_json:  # the result above is the one JSON value; the error goes to stderr only
            fail(error)
        raise error
    if not as_json:
        typer.echo(f"OK {success}")


@migrate_app.command("drift")
@handles_errors
def migrate_drift(
    ctx: typer.Context,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="URL",
            help="Compare with this other database (PostgreSQL URL, MySQL DSN or mysql:// URL) "
            "instead of with the schema of the recorded revision.",
        ),
    ] = None,
    against_path: Annotated[
        Path | None, typer.Option("--against-path", help="Compare with this other SQLite file.")
    ] = None,
    against_driver: Annotated[
        str | None,
        typer.Option("--against-driver", help="sqlite, postgres or mysql for --against (default: from the URL)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Operator additions (an extra index, column, table) count as drift too.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare the live database with the schema its revision should have, or with another database.

    Prints each difference (drift, an operator's addition, a service artefact) and the SQL that
    would reconcile the drift. Exit 9 on drift, 0 when there is none. Reads only."""
    other = None
    if against is not None or against_path is not None or against_driver is not None:
        if against is not None and against_path is not None:
            raise ConfigError("--against and --against-path contradict each other", hint="give only one of them")
        if against is None and against_path is None:
            raise ConfigError(
                "--against-driver needs --against URL", hint="give --against URL (or --against-path FILE) with it"
            )
        other = resolve_settings(against_driver, against_path, against, env={})
    report = commands.drift(state(ctx).settings(), other, strict=strict)
    emit(report.as_dict(), as_json, lambda: render_drift(report))
    if report.drift:
        raise typer.Exit(VerificationError.exit_code)


@migrate_app.command("rehearse")
@handles_errors
def migrate_rehearse(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Target revision (default head).")] = "head",
    as_json: JsonOption = False,
) -> None:
    """Run the pending revisions on a throw-away copy of the database, then delete the copy."""
    progress = None if as_json else json_log.progress()
    result = rehearse.rehearse(state(ctx).settings(), to, progress=progress)
    emit(result.as_dict(), as_json, lambda: render_rehearsal(result))
    if not result.ok:
        raise typer.Exit(MigrationError.exit_code)


@db_app.command("backup")
@handles_errors
def db_backup(
    ctx: typer.Context,
    out: OutOption = None,
    backup_dir: BackupDirOption = None,
    keep_backups: KeepBackupsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back the database up now (SQLite: a checked copy; PostgreSQL: pg_dump; MySQL: mariadb-dump)."""
    checked_numbers(keep_backups, None)
    settings = state(ctx).settings()
    path = backup.backup(settings, out, backup_dir=backup_dir, keep=keep_backups)
    emit({"database": settings.describe(), "backup": str(path)}, as_json, f"backup: {path}")


@db_app.command("restore")
@handles_errors
def db_restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A backup from llm-proxy-db db backup or a migration.")],
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
    as_json: JsonOption = False,
) -> None:
    """Replace the database's contents with FILE, keeping a safety copy of the current ones.

    SQLite: a backup file, restored in place. PostgreSQL: a pg_dump file (pg_restore).
    MySQL/MariaDB: a mariadb-dump/mysqldump file (mariadb/mysql client)."""
    checked_numbers(None, lock_timeout)
    settings = state(ctx).settings()
    result = backup.restore(
        settings, file, backup_dir=backup_dir, lock_timeout=lock_timeout, progress=json_log.progress(), force=force
    )
    emit(result.as_dict(), as_json, lambda: render_restore(result))


def main() -> None:
    """Run the full command line (the ``llm-proxy-db`` script enters via :func:`fast_path.main`).

    Click's own usage errors (an unknown option, ``--keep-backups abc``) exit 2 as usual; with
    ``--json`` among the arguments they are also printed as the JSON error object.
    """
    signal.signal(signal.SIGTERM, _terminated)
    streams.guard()  # a reader that goes away (`| head`) stops the output, never the run
    try:
        code = app(standalone_mode=False, prog_name="llm-proxy-db")  # the alias shows the same help
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        exit_code = int(getattr(exc, "exit_code", 2))
        usage = ConfigError(exc.format_message(), hint="see --help")
        usage.exit_code = exit_code
        if json_log.json_logs():
            json_log.log_message("error", usage.message, event="error", hint=usage.hint, exit_code=exit_code)
        else:
            exc.show()  # type: ignore[attr-defined]
        if "--json" in sys.argv[1:]:
            typer.echo(error_json(usage))
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _terminated(signum: int, _frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C: every cleanup of the run (temporary copies, scratch
    databases, child processes such as pg_restore) runs before the process exits."""
    raise SystemExit(128 + signum)
