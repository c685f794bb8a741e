"""``migrate history``, ``log``, ``manifest`` at head, answered fast.

The fast answers (:mod:`llm_proxy_db.quick_answers`) must equal the full CLI's output byte for
byte on every dialect, and step aside whenever anything is unusual.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

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
# Answered by the full path only: adoption's detection reads relation kinds, a rehearsal refuses
# a transaction pooler or a read-only server (safety.topology), which no bare read checks.
FULL_ONLY = [
    ["migrate", "adopt", "--dry-run"], ["migrate", "adopt", "--dry-run", "--json"],
    ["migrate", "adopt", "--json", "--dry-run"], ["migrate", "rehearse"], ["migrate", "rehearse", "--json"],
]


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


@pytest.mark.parametrize("command", READS, ids=" ".join)
def test_fast_answers_equal_the_full_cli(settings: Settings, command: list[str]) -> None:
    """At head, on every dialect, the fast path prints exactly what the full CLI prints."""
    _with_history(settings)
    argv = _options(settings) + command
    fast = fast_path.output_at_head(argv)
    assert fast is not None
    assert fast == _full(argv)


@pytest.mark.parametrize("command", READS[:4], ids=" ".join)
def test_postgres_urls_with_a_query_take_the_settings_route(postgres_url, command: list[str]) -> None:
    """A URL the plain form does not cover is read through Settings, with the same answer."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    _with_history(settings)
    argv = _options(settings, plain=False) + command
    assert fast_path.output_at_head(argv) == _full(argv)


def test_no_run_log_is_an_empty_log(sqlite_settings: Settings) -> None:
    """A database at head whose run log was dropped: "no runs recorded", as the full CLI says."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection, connection.begin():
        connection.exec_driver_sql(f"DROP TABLE {run_log.RUN_LOG_TABLE}")
    for command in READS[:4]:
        argv = _options(sqlite_settings) + command
        assert fast_path.output_at_head(argv) == _full(argv)


@pytest.mark.parametrize("command", READS[:4], ids=" ".join)
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
    for words in (["migrate", "log"], ["migrate", "history"], ["migrate", "manifest"]):
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


@pytest.mark.parametrize("command", [["migrate", "adopt"], *FULL_ONLY], ids=" ".join)
def test_adopt_and_rehearse_go_to_the_full_cli(sqlite_settings: Settings, command: list[str]) -> None:
    """Adopting, its dry run and a rehearsal are the full path's, even at head."""
    commands.upgrade(sqlite_settings)
    assert fast_path.output_at_head(_options(sqlite_settings) + command) is None


@pytest.mark.parametrize("value", ["1.5", True, b"1"])
def test_durations_of_another_shape_are_unsure(value: object) -> None:
    """A stored ``seconds`` SQLAlchemy would not read as a number sends the log to the full path."""
    with pytest.raises(ValueError):
        quick_answers._duration(value)


@pytest.mark.parametrize("command", READS, ids=" ".join)
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
