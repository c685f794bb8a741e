"""The commands a deployment runs before every start, and the read-only ones, answered fast at head.

``llm-proxy-db migrate status [--json]``, ``setup [--json]`` and ``migrate up [--json]`` (what an
init container or a Kubernetes Job runs) against an up-to-date database must cost a fraction of
``alembic current`` (issues 6 and 22); so must ``--version``, which needs no database at all.
Parsing the command line with Typer alone costs more than the whole answer (it loads
pydantic), so :func:`output_at_head`
recognises exactly these invocations, with the global options in the forms Click accepts,
and answers them when :func:`~llm_proxy_db.quick_status.at_head` says the database is at
head.  Anything else (other commands, ``--help``, an unknown option, a database not at head,
any error) returns None and the full CLI runs, so every message and exit code stays Typer's.
The output is produced by the same renderers as the full CLI; a test compares the two.

Every ``--help`` screen is printed from :mod:`.help_screens`, rendered by Typer in advance
(:func:`help_screen`): Typer validates each parameter through pydantic before it prints a
subcommand's help, which alone costs about 0.1 s of CPU.

``migrate history``, ``log``, ``adopt --dry-run``, ``rehearse`` (each with or without
``--json``) and ``migrate manifest`` are answered the same way by
:mod:`llm_proxy_db.quick_answers` (the revision chain read from the released files, the run
log and the table names with the bare driver), on the same terms: sure, or the full CLI.
Adoption's dry run steps aside when anything but a plain table carries one of the service's
table names; a rehearsal when a bare read cannot prove that the full path would not refuse
it (a transaction pooler, a server that only reads, SQLite rows breaking a foreign key, a
direct URL). A plain PostgreSQL or MySQL `DATABASE_URL` is read without SQLAlchemy.

:func:`main` is the ``llm-proxy-db`` script's entry point: importing :mod:`llm_proxy_db.cli.app`
(Typer) is itself a third of the budget, so it happens only when the fast path steps aside.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llm_proxy_db import quick_status
from llm_proxy_db.cli import streams
from llm_proxy_db.cli.render import (
    render_adoption,
    render_history,
    render_log,
    render_rehearsal,
    render_run,
    render_status,
)
from llm_proxy_db.cli.version import version_line
from llm_proxy_db.config.parsing import env_settings
from llm_proxy_db.config.settings import MYSQL, POSTGRES, postgres_url_text
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.migration.results import RunResult
from llm_proxy_db.status import Status, status_at_head, with_found_topology, with_topology

if TYPE_CHECKING:
    from llm_proxy_db.adoption.plans import AdoptionResult
    from llm_proxy_db.migration.revision_info import RevisionState
    from llm_proxy_db.migration.run_log_entry import Entry
    from llm_proxy_db.safety.rehearsal_result import RehearsalResult

GLOBAL_OPTIONS = {
    "--db-driver": "db_driver",
    "--database-path": "database_path",
    "--database-url": "database_url",
    "--direct-url": "direct_url",  # checked as the full path checks it, not read: DATABASE_URL answers
}

# Exactly these command words (after the global options) may take the fast path.
FAST_COMMANDS = [
    ["migrate", "manifest"],
    *([*words, *flag] for words in (["setup"], ["migrate", "up"], ["migrate", "status"], ["migrate", "history"],
                                    ["migrate", "log"], ["migrate", "rehearse"], ["migrate", "adopt", "--dry-run"])
      for flag in ([], ["--json"])),
    ["migrate", "adopt", "--json", "--dry-run"],
]


def main() -> None:
    """Entry point of ``llm-proxy-db`` (and ``llm-proxy``): answer at head without Typer, else the full CLI."""
    safe_streams()
    argv = sys.argv[1:]
    output = version_line() if argv == ["--version"] else help_screen(argv) or output_at_head(argv)
    if output is not None:
        sys.stdout.write(output)
        return
    from llm_proxy_db.cli import app as cli  # Typer, Alembic, SQLAlchemy only off the fast path: start-up time

    cli.main()


def help_screen(argv: Sequence[str]) -> str | None:
    """``[COMMAND...] --help``: the screen Typer would print, from :mod:`.help_screens`.

    Only for command words followed by ``--help`` (no option before it) on a terminal of 80
    columns or more, where Click's help is 78 wide whatever the width (the screens were
    rendered so); anything else, or a command without a stored screen, returns None.
    """
    if not argv or argv[-1] != "--help" or any(word.startswith("-") for word in argv[:-1]):
        return None
    import shutil  # only a help screen asks the terminal's width: start-up time

    if shutil.get_terminal_size().columns < 80:
        return None
    from llm_proxy_db.cli import help_screens  # only --help loads the screens: start-up time

    return help_screens.SCREENS.get(" ".join(argv[:-1]))


def safe_streams() -> None:
    """Never fail on output: characters the terminal's encoding lacks are escaped, not fatal
    (``PYTHONIOENCODING=ascii`` and a non-ASCII path, or a path holding bytes that are not
    UTF-8), and a reader that went away (``| head``) stops the output, never the command
    (:mod:`llm_proxy_db.cli.streams`)."""
    streams.guard()


def output_at_head(argv: Sequence[str]) -> str | None:
    """What the CLI would print for ``argv`` at head, or None to let the full CLI run.

    The settings are validated first, as by every command: a bad one sends the invocation
    to the full CLI, which reports it.
    """
    parsed = _parse(list(argv))
    if parsed is None:
        return None
    options, command = parsed
    if command[0] == "migrate" and command[1] in (*_READ_ONLY, "manifest"):
        return _read_only_output(options, command)
    try:
        env_settings()
        description, topology = _description_at_head(options, adopted_ok=command[:2] != ["migrate", "status"])
        status = status_at_head(description) if description is not None else None
        if status is not None and topology is not None and command[:2] == ["migrate", "status"]:
            status = topology(status)
    except Exception:  # noqa: BLE001 - the full CLI reports it properly
        return None
    if status is None or description is None:
        return None
    if command[:2] != ["migrate", "status"]:  # setup or migrate up [--json]: a run with nothing to do
        return _run_at_head(description, status.head_revision, status.checksum_warnings, command)
    if command == ["migrate", "status", "--json"]:
        return json.dumps(status.as_dict(), indent=2) + "\n"
    return render_status(status) + "\n"


def _read_only_output(options: dict[str, str], command: list[str]) -> str | None:
    """``migrate history`` / ``log`` [``--json``] at head, and
    ``migrate manifest`` when the manifest is current (:mod:`llm_proxy_db.quick_answers`)."""
    from llm_proxy_db import quick_answers  # only these commands pay for its imports: start-up time

    try:
        env_settings()
        if command == ["migrate", "manifest"]:
            return "OK the manifest is current\n" if quick_answers.manifest_current() else None
        answer_at_head, render = _READ_ONLY[command[1]]
        answer = getattr(quick_answers, answer_at_head)(quick_answers.reader(options))
        if answer is None:
            return None
        return render(answer, "--json" in command) + "\n"
    except Exception:  # noqa: BLE001 - the full CLI reports it properly
        return None


def _log(entries: list[Entry], as_json: bool) -> str:
    return json.dumps([e.as_dict() for e in entries], indent=2) if as_json else render_log(entries)


def _history(states: list[RevisionState], as_json: bool) -> str:
    return json.dumps([s.as_dict() for s in states], indent=2) if as_json else render_history(states)


def _adopt(result: AdoptionResult, as_json: bool) -> str:
    """As ``migrate adopt --dry-run`` prints it (the plan, ``"run": null``)."""
    if as_json:
        return json.dumps({**result.plan.as_dict(), "run": None}, indent=2)
    return render_adoption(result)


def _rehearse(result: RehearsalResult, as_json: bool) -> str:
    return json.dumps(result.as_dict(), indent=2) if as_json else render_rehearsal(result)


# Command word -> (the quick_answers function answering it at head, its renderer).
_READ_ONLY: dict[str, tuple[str, Callable[[Any, bool], str]]] = {
    "log": ("log_at_head", _log),
    "history": ("history_at_head", _history),
    "adopt": ("adopt_dry_run_at_head", _adopt),
    "rehearse": ("rehearsal_at_head", _rehearse),
}


def _description_at_head(
    options: dict[str, str], *, adopted_ok: bool
) -> tuple[str | None, Callable[[Status], Status] | None]:
    """The database's description when it is at head, else None (see quick_status.current_head),
    and how to add what the server is part of to its status (None: nothing to add, a plain
    PostgreSQL URL).  A plain URL (PostgreSQL, MySQL) is read without SQLAlchemy."""
    raw_url = postgres_url_text(
        options.get("db_driver"), options.get("database_url"), database_path=options.get("database_path")
    )
    driver = quick_status.driver_chosen(options) if raw_url else None
    if raw_url and driver == POSTGRES and quick_status.plain_postgres_url(raw_url):
        if not quick_status.direct_url_plain_or_absent(options.get("direct_url")):
            return None, None  # the full path parses the direct URL and may refuse it
        plain = quick_status.postgres_url_at_head(raw_url, adopted_ok=adopted_ok)
        assert plain is not None
        at_head, description = plain
        return (description if at_head else None), None
    mysql = quick_status.plain_mysql_url(raw_url) if raw_url and driver == MYSQL else None
    if mysql is not None:
        if not quick_status.direct_url_plain_or_absent(options.get("direct_url"), quick_status.plain_mysql_url):
            return None, None  # the full path parses the direct URL and may refuse it
        kwargs, description = mysql
        at_head = quick_status.mysql_at_head(kwargs, adopted_ok=adopted_ok)
        return (description if at_head else None), lambda status: with_found_topology(status, _topology_at(kwargs))
    settings = resolve_settings(
        options.get("db_driver"), options.get("database_path"), options.get("database_url"),
        direct_url=options.get("direct_url"),
    )  # DATABASE_URL read as the full path reads it: not as an explicit --database-url (which implies its driver)
    described = settings.describe() if quick_status.at_head(settings, adopted_ok=adopted_ok) else None
    return described, lambda status: with_topology(status, settings)



def _topology_at(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """What a MySQL server is part of, read with the bare driver."""
    from llm_proxy_db.dialects.mysql import writable  # only a MySQL status pays for this import: start-up time

    return writable.describe_topology_at(kwargs)


def _run_at_head(description: str, head: str | None, warnings: list[str], command: list[str]) -> str:
    """``setup`` or ``migrate up`` at head, as the full CLI prints it (``--json``: the result's
    ``as_dict()``: ``StartupResult`` for setup, ``MigrationOutcome`` for migrate up)."""
    run = RunResult(before=head, after=head, checksum_warnings=warnings)
    setup = command[0] == "setup"
    if command[-1] == "--json":
        data = {
            "database": description, **({"action": "up_to_date"} if setup else {}), **run.as_dict(),
            "backup": None, "lock_wait_seconds": 0.0, **({"filled_token_ids": 0} if setup else {}),
        }
        return json.dumps(data, indent=2) + "\n"
    text = render_run(run)
    return f"database: {description}\n{text}\n" if setup else f"{text}\n"


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """Global options and the command words, or None for anything but the fast commands."""
    options: dict[str, str] = {}
    while argv and argv[0].startswith("--"):
        name, sep, value = argv.pop(0).partition("=")
        if name not in GLOBAL_OPTIONS:
            return None
        if not sep:
            if not argv:
                return None
            value = argv.pop(0)
        options[GLOBAL_OPTIONS[name]] = value
    if argv in FAST_COMMANDS:
        return options, argv
    return None
