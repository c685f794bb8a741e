"""``migrate history``, ``log``, ``adopt --dry-run``, ``rehearse``, ``manifest`` at head, answered fast.

The fast answers (:mod:`llm_proxy_db.quick_answers`) must equal the full CLI's output byte for
byte on every dialect, and step aside whenever anything is unusual.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands, quick_answers
from llm_proxy_db.cli import app as cli
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.paths import script_location
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import revisions, run_log
from llm_proxy_db.migration.released_chain import released_chain

READS = [
    ["migrate", "history"], ["migrate", "history", "--json"], ["migrate", "log"], ["migrate", "log", "--json"],
    ["migrate", "manifest"],
]
ADOPT = [["migrate", "adopt", "--dry-run"], ["migrate", "adopt", "--dry-run", "--json"],
         ["migrate", "adopt", "--json", "--dry-run"]]
REHEARSE = [["migrate", "rehearse"], ["migrate", "rehearse", "--json"]]
ADOPT_AND_REHEARSE = ADOPT + REHEARSE


def _options(settings: Settings, *, plain: bool = True) -> list[str]:
    if settings.is_sqlite:
        return ["--database-path", str(settings.database_path)]
    url = settings.sqlalchemy_url()
    if not plain:  # a query string: the Settings route rather than the plain-URL one
        url = url.update_query_dict({"connect_timeout": "10"})
    return ["--db-driver", settings.driver, "--database-url", url.render_as_string(False)]


def _with_history(settings: Settings) -> None:
    """At head, with a run log holding a revert, a re-apply, a failure, a backup and a detail."""
    commands.upgrade(settings)
    commands.downgrade(settings, "0006")
    commands.upgrade(settings)
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    with connect(settings) as connection, connection.begin():
        run_log.write(connection, run_log.Entry(
            "upgrade", "0007", "0006", "0006", moment, moment + dt.timedelta(seconds=1.5), outcome="failure",
            backup_file="/backups/llm-proxy ü.db", detail="lock timeout: ü", host="h", os_user="u",
            duration=2.25,  # measured client side: the fast read takes the stored seconds too
        ))
        # An operator's table and view: neither changes what the read-only commands print.
        connection.exec_driver_sql("CREATE TABLE operator_notes (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql("CREATE VIEW operator_view AS SELECT 1 AS one")


def _full(argv: list[str]) -> str:
    result = CliRunner().invoke(cli.app, argv, env={"LLM_PROXY_DEBUG": ""})
    assert result.exit_code == 0, result.output
    return result.stdout


def _same_or_full(argv: list[str], env: dict[str, str] | None = None) -> tuple[str | None, Any]:
    """The fast answer (None: it stepped aside) and the full CLI's result; when the fast path
    answered, the full CLI exits 0 with exactly that output."""
    fast = fast_path.output_at_head(argv)
    full = CliRunner().invoke(cli.app, argv, env={"LLM_PROXY_DEBUG": "", **(env or {})})
    if fast is not None:
        assert full.exit_code == 0, full.output
        assert fast == full.stdout
    return fast, full


@pytest.mark.parametrize("command", READS + ADOPT_AND_REHEARSE, ids=" ".join)
def test_fast_answers_equal_the_full_cli(settings: Settings, command: list[str]) -> None:
    """At head, on every dialect, the fast path prints exactly what the full CLI prints."""
    _with_history(settings)
    argv = _options(settings) + command
    fast = fast_path.output_at_head(argv)
    assert fast is not None  # MySQL's rehearsal too: its writable check is read with the bare driver
    assert fast == _full(argv)


@pytest.mark.parametrize("command", READS[:4] + ADOPT_AND_REHEARSE, ids=" ".join)
def test_postgres_urls_with_a_query_take_the_settings_route(postgres_url, command: list[str]) -> None:
    """A URL the plain form does not cover is read through Settings, with the same answer."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    _with_history(settings)
    argv = _options(settings, plain=False) + command
    fast = fast_path.output_at_head(argv)
    assert fast is not None
    assert fast == _full(argv)


def test_no_run_log_is_an_empty_log(sqlite_settings: Settings) -> None:
    """A database at head whose run log was dropped: "no runs recorded", as the full CLI says."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection, connection.begin():
        connection.exec_driver_sql(f"DROP TABLE {run_log.RUN_LOG_TABLE}")
    for command in READS[:4]:
        argv = _options(sqlite_settings) + command
        assert fast_path.output_at_head(argv) == _full(argv)


@pytest.mark.parametrize("command", READS[:4] + ADOPT_AND_REHEARSE, ids=" ".join)
def test_not_at_head_goes_to_the_full_cli(settings: Settings, command: list[str]) -> None:
    """Pending revisions, or no database yet, are the full path's business."""
    argv = _options(settings) + command
    if settings.is_sqlite:
        assert fast_path.output_at_head(argv) is None  # no file yet
    commands.upgrade(settings, "0006")
    assert fast_path.output_at_head(argv) is None


@pytest.mark.parametrize(
    "extra", [["--limit", "2"], ["--json", "--limit", "1"], ["--help"], ["--jsn"], ["--to", "0006"],
              ["--force-stamp", "0007"]], ids=" ".join
)
def test_other_options_go_to_the_full_cli(sqlite_settings: Settings, extra: list[str]) -> None:
    """Only the bare commands and --json are answered here."""
    commands.upgrade(sqlite_settings)
    for words in (["migrate", "log"], ["migrate", "history"], ["migrate", "manifest"], ["migrate", "rehearse"],
                  ["migrate", "adopt", "--dry-run"], ["migrate", "adopt"]):
        assert fast_path.output_at_head(_options(sqlite_settings) + words + extra) is None


def test_the_released_chain_is_alembics_chain() -> None:
    """Read from the files and the manifest, the chain equals Alembic's view of it."""
    chain = released_chain()
    assert chain is not None
    assert chain.revisions == revisions.chain()


def _copy_of_scripts(tmp_path: Path) -> Path:
    location = tmp_path / "alembic"
    shutil.copytree(script_location(), location, ignore=shutil.ignore_patterns("__pycache__"))
    assert released_chain(location) is not None
    return location


@pytest.mark.parametrize(
    "change",
    [
        lambda v: (v / "0008_new.py").write_text('"""new"""\nrevision = "0008"\ndown_revision = "0007"\n'),
        lambda v: (v / "0007_audit_outcome_values.py").write_text(
            (v / "0007_audit_outcome_values.py").read_text() + "\n# edited\n"
        ),
        lambda v: (v / "0003_soft_deactivation.py").unlink(),
        lambda v: (v / "manifest.sum").write_text("garbage\n"),
        lambda v: (v / "manifest.sum").write_text(
            (v / "manifest.sum").read_text().replace("0002 0002_audit_events", "0009 0002_audit_events")
        ),
    ],
    ids=["new revision", "edited revision", "missing revision", "broken manifest", "wrong id"],
)
def test_anything_unreleased_is_unsure(tmp_path: Path, change) -> None:
    """A new, edited or missing file, or a manifest that disagrees: Alembic's path answers."""
    location = _copy_of_scripts(tmp_path)
    change(location / "versions")
    assert released_chain(location) is None


def test_a_stale_manifest_goes_to_the_full_cli(monkeypatch, sqlite_settings: Settings) -> None:
    """When the manifest check would fail, the fast path steps aside for the full report."""
    monkeypatch.setattr(quick_answers, "released_chain", lambda: None)
    assert fast_path.output_at_head(["migrate", "manifest"]) is None
    monkeypatch.setattr(quick_answers, "_sqlalchemy_series", lambda: "1.3")
    assert not quick_answers.manifest_current()


def test_the_sqlalchemy_series_is_the_imported_one() -> None:
    """Read from the module's source without importing it, it is what the import says."""
    from llm_proxy_db.adoption.known_state_files import sqlalchemy_series

    assert quick_answers._sqlalchemy_series() == sqlalchemy_series()


@pytest.mark.parametrize(
    "value", ["2026-01-02T03:04:05", "yesterday", 1700000000, dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)]
)
def test_timestamps_of_another_shape_are_unsure(value: object) -> None:
    """Only the shapes SQLAlchemy reads back are converted; anything else raises (full path)."""
    with pytest.raises(ValueError):
        quick_answers._moment(value)


def test_rows_of_another_shape_are_unsure(sqlite_settings: Settings) -> None:
    """A row the bare read did not expect makes the log unsure rather than wrong."""
    commands.upgrade(sqlite_settings)
    read = quick_answers.reader({"database_path": str(sqlite_settings.database_path)})
    broken = dataclasses.replace(read, run_log=lambda: [("upgrade", 7, *[None] * 10)])
    assert quick_answers.log_at_head(broken) is None
    assert quick_answers.history_at_head(broken) is None


@pytest.mark.parametrize("command", [["migrate", "adopt"], ["migrate", "adopt", "--json"]], ids=" ".join)
def test_adopting_goes_to_the_full_cli(sqlite_settings: Settings, command: list[str]) -> None:
    """Only adoption's dry run is answered here: adopting for real is the guarded path's."""
    commands.upgrade(sqlite_settings)
    assert fast_path.output_at_head(_options(sqlite_settings) + command) is None


def _rename_table(settings: Settings, old: str, new: str) -> str:
    return f"RENAME TABLE {old} TO {new}" if settings.driver == "mysql" else f"ALTER TABLE {old} RENAME TO {new}"


def test_a_view_under_a_service_table_name_goes_to_the_full_cli(settings: Settings) -> None:
    """At head, ``tokens`` moved aside and a view in its place: adoption's detection tells
    relation kinds apart, so its dry run is the full path's; a rehearsal answered fast (it
    does not look at kinds) is the full path's answer."""
    commands.upgrade(settings)
    with connect(settings) as connection, connection.begin():
        connection.exec_driver_sql(_rename_table(settings, "tokens", "tokens_moved"))
        connection.exec_driver_sql("CREATE VIEW tokens AS SELECT * FROM tokens_moved")
    for command in ADOPT:
        fast, full = _same_or_full(_options(settings) + command)
        assert fast is None, fast
        assert full.exit_code == 0 and "tokens_moved" in full.stdout, full.output
    for command in REHEARSE:
        _same_or_full(_options(settings) + command)


def test_a_missing_service_table_goes_to_the_full_cli(settings: Settings) -> None:
    """At head but ``audit_events`` gone: unusual, the full path answers adoption's dry run."""
    commands.upgrade(settings)
    with connect(settings) as connection, connection.begin():
        connection.exec_driver_sql(_rename_table(settings, "audit_events", "audit_events_kept"))
    for command in ADOPT:
        assert _same_or_full(_options(settings) + command)[0] is None


def test_operator_tables_and_the_backup_record_are_listed_as_the_full_path_lists_them(
    sqlite_settings: Settings,
) -> None:
    """Tables of every kind SQLAlchemy lists or leaves out (``sqlite_sequence``, a virtual
    table, a backup's origin record, a temporary one elsewhere): the same list, fast or full."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection, connection.begin():
        connection.exec_driver_sql("CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT)")
        connection.exec_driver_sql("INSERT INTO counted DEFAULT VALUES")
        connection.exec_driver_sql("CREATE VIRTUAL TABLE notes USING fts5(body)")
        connection.exec_driver_sql("CREATE TABLE llm_proxy_backup_origin (path TEXT)")
        connection.exec_driver_sql('CREATE TABLE "Mixed Case" (id INTEGER)')
    for command in ADOPT:
        fast, _ = _same_or_full(_options(sqlite_settings) + command)
        assert fast is not None and "notes" in fast and "llm_proxy_backup_origin" not in fast


def test_the_bare_table_read_is_sqlalchemys(settings: Settings) -> None:
    """The dialect's ``read_tables`` lists what SQLAlchemy's inspector lists, and finds what
    ``relations_named`` finds (a view named like one of ours)."""
    import sqlalchemy as sa

    from llm_proxy_db.dialects import dialect_for
    from llm_proxy_db.schema.fingerprint import OUR_TABLES

    _with_history(settings)
    with connect(settings) as connection, connection.begin():
        connection.exec_driver_sql(_rename_table(settings, "projects", "projects_moved"))
        connection.exec_driver_sql("CREATE VIEW projects AS SELECT * FROM projects_moved")
    dialect = dialect_for(settings)
    tables, kinds = dialect.read_tables(settings, OUR_TABLES)
    with connect(settings) as connection:
        assert sorted(tables) == sorted(sa.inspect(connection).get_table_names())
        assert kinds == dialect.relations_named(connection, OUR_TABLES) == {"projects": "view"}


def test_rows_breaking_a_foreign_key_send_rehearse_to_the_full_cli(sqlite_settings: Settings) -> None:
    """The full path refuses them at head too (exit 6), without a copy: the fast path steps aside."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings, foreign_keys=False) as connection:
        # With an id: a token without one sends every fast answer aside on its own.
        connection.exec_driver_sql("INSERT INTO tokens (id, token, project_id) VALUES ('i', 'x', 'ghost')")
        connection.commit()
    for command in REHEARSE:
        fast, full = _same_or_full(_options(sqlite_settings) + command)
        assert fast is None
        assert full.exit_code == 6 and "foreign key violation" in full.output, full.output


@pytest.mark.parametrize("where", ["option", "variable"])
def test_a_direct_url_sends_rehearse_to_the_full_cli(postgres_url, where: str) -> None:
    """The full path rehearses through the direct URL: the fast path steps aside."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings)
    direct = postgres_url.render_as_string(False)
    argv = _options(settings) + (["--direct-url", direct] if where == "option" else [])
    env = {"LLM_PROXY_DIRECT_URL": direct} if where == "variable" else {}
    for command in REHEARSE:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            fast, full = _same_or_full(argv + command, env)
        assert fast is None
        assert full.exit_code == 0, full.output


@pytest.mark.postgresql
def test_on_a_standby_rehearse_is_refused_by_the_full_cli(replicated_database) -> None:
    """A read-only standby at head: a rehearsal is refused (exit 3) by the full path, and
    adoption's dry run is read there; the fast path steps aside for both (``(standby)``)."""
    primary = Settings(driver="postgres", database_url=replicated_database.primary)
    commands.upgrade(primary)
    replicated_database.wait_replayed()
    argv = _options(Settings(driver="postgres", database_url=replicated_database.replica))
    for command in REHEARSE:
        fast, full = _same_or_full(argv + command)
        assert fast is None
        assert full.exit_code == 3 and "read-only standby" in full.output, full.output
    for command in ADOPT:
        fast, full = _same_or_full(argv + command)
        assert full.exit_code == 0, full.output


@pytest.mark.postgresql
def test_through_a_transaction_pooler_rehearse_is_refused_by_the_full_cli(pooled_database) -> None:
    """PgBouncer in transaction mode at head: the rehearsal is refused (exit 2) by the full
    path after the same probe stepped the fast path aside; adoption's dry run (reads only) is
    answered fast, equal to the full path's."""
    commands.upgrade(pooled_database.settings(pooled_database.direct))
    argv = _options(pooled_database.settings(pooled_database.transaction))
    for command in REHEARSE:
        fast, full = _same_or_full(argv + command)
        assert fast is None
        assert full.exit_code == 2 and "transaction-pooling" in full.output, full.output
    for command in ADOPT:
        fast, full = _same_or_full(argv + command)
        assert fast is not None
    session = _options(pooled_database.settings(pooled_database.session))
    for command in ADOPT_AND_REHEARSE:  # a session pool is a session of our own
        fast, full = _same_or_full(session + command)
        assert fast is not None


@pytest.mark.parametrize("value", ["1.5", True, b"1"])
def test_durations_of_another_shape_are_unsure(value: object) -> None:
    """A stored ``seconds`` SQLAlchemy would not read as a number sends the log to the full path."""
    with pytest.raises(ValueError):
        quick_answers._duration(value)


@pytest.mark.parametrize("command", READS + ADOPT_AND_REHEARSE, ids=" ".join)
def test_a_fresh_process_answers_without_alembic_or_sqlalchemy(sqlite_settings: Settings, command) -> None:
    """The entry point, in a process of its own, answers at head and never imports them."""
    import subprocess
    import sys

    commands.upgrade(sqlite_settings)
    probe = (
        "import sys; from llm_proxy_db.cli import fast_path; fast_path.main(); "
        "loaded = [m for m in ('alembic', 'sqlalchemy', 'typer') if m in sys.modules]; "
        "sys.stderr.write(repr(loaded))"
    )
    argv = [sys.executable, "-c", probe, *_options(sqlite_settings), *command]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stderr == "[]"
    assert done.stdout == _full(_options(sqlite_settings) + command)


EVERY_FAST = [["setup"], ["migrate", "up"], ["migrate", "status"], ["migrate", "status", "--json"],
              *READS[:4], *ADOPT_AND_REHEARSE]


@pytest.mark.parametrize("where", ["option", "variable"])
@pytest.mark.parametrize("direct", ["garbage", "mysql://root@127.0.0.1:3306/test"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain URL", "URL with a query"])
def test_a_direct_url_the_full_path_refuses_is_refused(
    postgres_url, monkeypatch, where: str, direct: str, plain: bool
) -> None:
    """The full path parses the direct URL and refuses a malformed one, or one of another
    dialect (exit 2); the fast path never answers in its place."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings)
    options = _options(settings, plain=plain) + (["--direct-url", direct] if where == "option" else [])
    if where == "variable":
        monkeypatch.setenv("LLM_PROXY_DIRECT_URL", direct)
    for command in EVERY_FAST:
        fast, full = _same_or_full(options + command, {"LLM_PROXY_DIRECT_URL": direct} if where == "variable" else {})
        assert fast is None, command
        assert full.exit_code == 2 and "LLM_PROXY_DIRECT_URL" in full.output, full.output


def test_a_plain_direct_url_keeps_the_fast_answers(postgres_url, monkeypatch) -> None:
    """A direct URL of the plain form is accepted by the full path as it is: the commands
    that only read still answer fast, equal to the full path (a rehearsal steps aside)."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    _with_history(settings)
    direct = postgres_url.set(drivername="postgresql").render_as_string(False)
    monkeypatch.setenv("LLM_PROXY_DIRECT_URL", direct)
    for command in EVERY_FAST:
        fast, _ = _same_or_full(_options(settings) + command, {"LLM_PROXY_DIRECT_URL": direct})
        assert (fast is None) == (command[:2] == ["migrate", "rehearse"]), command


def test_the_marker_of_an_unfinished_operation_goes_to_the_full_cli(settings: Settings) -> None:
    """Adoption refuses while a restore or a downgrade is unfinished (the marker table, read on
    every dialect): its dry run steps aside, and the full path says why."""
    from llm_proxy_db.dialects import unfinished

    commands.upgrade(settings)
    with connect(settings) as connection:
        unfinished.mark(connection, unfinished.RESTORE, "/backups/x")
    for command in ADOPT:
        fast, full = _same_or_full(_options(settings) + command)
        assert fast is None
        assert full.exit_code != 0 and "restore" in full.output, full.output
