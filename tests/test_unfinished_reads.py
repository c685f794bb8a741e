"""A MySQL database a restore or a downgrade left part-way is never read as if it were whole (issue 21).

``llm_proxy_unfinished`` marks a restore cut short (part of a dump's rows) or a downgrade killed
inside a revision (``alembic_version`` still names the revision whose columns are partly gone).
``setup`` and ``migrate up`` refuse such a database (exit 6, saying how to finish the operation);
so does every command that would read it as a whole schema at a revision: ``migrate rehearse``
(its copy leaves the marker out and would look whole), ``drift`` (either side), ``up --dry-run``,
``up --sql`` starting at the recorded revision, ``adopt --dry-run``.  ``migrate status`` reports
it instead (exit 0, a ``partial:`` line, ``up_to_date`` false), and the fast path at head never
answers for it.  Real MariaDB; the marker is written by the module the restore and the
executor use (``tests/test_restore_unfinished_backup.py`` and ``tests/test_mysql_resume.py``
cut real runs short).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import unfinished
from llm_proxy_db.migration import revisions
from tests.test_cli_safety import cli
from tests.test_fast_commands import _options

pytestmark = pytest.mark.mysql

HEAD = revisions.head_revision()
PARENT = revisions.chain()[-1].down_revision
DUMP = "/backups/llm-proxy.2026-12-01.sql"
# What each refusal's hint says (the one setup and migrate up give).
FINISH = {unfinished.RESTORE: f"redo the restore: `llm-proxy-db db restore {DUMP} --force`",
          unfinished.DOWNGRADE: f"finish the downgrade first: `llm-proxy-db migrate down --to {PARENT}`"}
READS = {
    "rehearse": ["migrate", "rehearse"],
    "drift": ["migrate", "drift"],
    "up --dry-run": ["migrate", "up", "--dry-run"],
    "up --sql": ["migrate", "up", "--sql"],
    "adopt --dry-run": ["migrate", "adopt", "--dry-run"],
}


def _marked(settings: Settings, kind: str) -> Settings:
    """At head (``alembic_version`` says so), marked as the restore or the downgrade marks it."""
    commands.upgrade(settings, no_backup=True)
    with connect(settings) as connection:
        unfinished.mark(connection, kind, DUMP if kind == unfinished.RESTORE else HEAD)
    return settings


@pytest.fixture
def make_mysql(mysql_database_factory: Callable[[], sa.engine.URL]) -> Callable[[], Settings]:
    return lambda: Settings(driver="mysql", database_url=mysql_database_factory())


def _copies(settings: Settings) -> set[str]:
    """The scratch databases a rehearsal of ``settings`` made and did not drop (others' are ignored)."""
    prefix = f"{settings.sqlalchemy_url().database}_rehearsal_"
    with connect(settings) as connection:
        return {str(name) for name in connection.exec_driver_sql("SHOW DATABASES").scalars() if name.startswith(prefix)}


@pytest.mark.parametrize("kind", [unfinished.RESTORE, unfinished.DOWNGRADE])
@pytest.mark.parametrize("command", list(READS), ids=list(READS))
def test_a_read_as_if_whole_is_refused_as_setup_refuses(
    make_mysql: Callable[[], Settings], kind: str, command: str
) -> None:
    settings = _marked(make_mysql(), kind)
    setup = cli(settings, "setup", "--no-backup")
    assert setup.exit_code == 6 and FINISH[kind] in setup.output, setup.output

    for extra in ([], ["--json"]):
        result = cli(settings, *READS[command], *extra)
        assert result.exit_code == 6, (command, extra, result.output)
        assert FINISH[kind] in result.output, result.output
        assert "Traceback" not in result.output and "no drift" not in result.output
        assert "outcome: OK" not in result.output and "COMMIT" not in result.output
        if command.startswith("adopt"):  # a dry run changes nothing: worded as such
            assert "refusing to adopt the database" in result.output, result.output
    assert _copies(settings) == set()
    assert commands.status(settings).unfinished  # still marked, nothing changed
    with connect(settings) as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD


def test_the_offline_script_can_still_start_where_the_operator_says(make_mysql: Callable[[], Settings]) -> None:
    settings = _marked(make_mysql(), unfinished.DOWNGRADE)
    refused = cli(settings, "migrate", "up", "--sql")
    assert refused.exit_code == 6 and "--from REV" in refused.output, refused.output
    named = cli(settings, "migrate", "up", "--sql", "--from", PARENT)
    assert named.exit_code == 0 and "COMMIT" in named.output, named.output


@pytest.mark.parametrize("kind", [unfinished.RESTORE, unfinished.DOWNGRADE])
def test_drift_against_a_marked_reference_is_refused(make_mysql: Callable[[], Settings], kind: str) -> None:
    """The reference side too: its "deviations" would be the operation's half-done work."""
    whole = make_mysql()
    commands.upgrade(whole, no_backup=True)
    reference = _marked(make_mysql(), kind)
    url = reference.sqlalchemy_url().render_as_string(hide_password=False)
    result = cli(whole, "migrate", "drift", "--against", url)
    assert result.exit_code == 6, result.output
    assert FINISH[kind] in result.output and reference.describe() in result.output, result.output


@pytest.mark.parametrize("kind", [unfinished.RESTORE, unfinished.DOWNGRADE])
def test_status_reports_a_marked_database_never_up_to_date(make_mysql: Callable[[], Settings], kind: str) -> None:
    settings = _marked(make_mysql(), kind)
    shown = cli(settings, "migrate", "status")
    assert shown.exit_code == 0 and "partial:" in shown.output and "up to date" not in shown.output, shown.output
    data = json.loads(cli(settings, "migrate", "status", "--json").stdout)
    assert data["current_revision"] == HEAD and data["pending"] == [] and data["unfinished"]
    assert data["up_to_date"] is False


@pytest.mark.parametrize("kind", [unfinished.RESTORE, unfinished.DOWNGRADE])
def test_the_fast_path_never_answers_for_a_marked_database(make_mysql: Callable[[], Settings], kind: str) -> None:
    """Every command the fast path may answer (setup and migrate up "up to date" among them)
    steps aside to the full path, which refuses or reports."""
    settings = _marked(make_mysql(), kind)
    commands_taking_a_database = [words for words in fast_path.FAST_COMMANDS if words != ["migrate", "manifest"]]
    assert ["setup"] in commands_taking_a_database and ["migrate", "status", "--json"] in commands_taking_a_database
    for words in commands_taking_a_database:
        assert fast_path.output_at_head(_options(settings) + words) is None, words
    with connect(settings) as connection:
        unfinished.clear(connection, unfinished.RESTORE, unfinished.DOWNGRADE, unfinished.REPLACED)
    assert fast_path.output_at_head(_options(settings) + ["setup"]) is not None  # the marker was the reason
