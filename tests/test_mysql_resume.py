"""MySQL's DDL is not transactional: a revision stopped half-way is resumed, never rolled back.

Each MySQL revision is a list of steps that check before they act (see
``llm_proxy_db.dialects.mysql.ddl``).  These tests stop revisions part-way, by a statement
that fails on purpose and by SIGKILL of the migrating process, then check that ``status``
says where the database stands and that a plain rerun reaches head with every row.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from alembic import op
from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.mysql import ddl as mysql_ddl
from llm_proxy_db.errors import DataLossError, MigrationError
from llm_proxy_db.migration import revisions
from llm_proxy_db.schema.drift import drift
from tests.safety_helpers import settings_env
from tests.seed import seed, snapshot

pytestmark = pytest.mark.mysql
IGNORE_TOKEN_ID = {"tokens": {"id"}}
STEPS = {"0005": 5, "0007": 3}
RUN_STEPS = mysql_ddl.run_steps


@pytest.fixture
def mysql_settings(mysql_url: sa.engine.URL) -> Settings:
    """An empty MySQL/MariaDB database."""
    return Settings(driver="mysql", database_url=mysql_url)


def _rows(settings: Settings) -> dict[str, list[tuple]]:
    with connect(settings) as connection:
        return snapshot(connection, exclude=IGNORE_TOKEN_ID)


def _is_mariadb(settings: Settings) -> bool:
    with connect(settings) as connection:
        return bool(connection.dialect.is_mariadb)


def _failing_after(done: int) -> Callable[[list[mysql_ddl.Step], object], None]:
    """A ``run_steps`` that runs ``done`` steps, then a statement MySQL refuses."""

    def run_steps(steps: list[mysql_ddl.Step], connection: object) -> None:
        RUN_STEPS(steps[:done], connection)  # type: ignore[arg-type]
        op.execute("ALTER TABLE tokens ADD COLUMN broken NO_SUCH_TYPE")

    return run_steps


def _assert_finishes_at_head(settings: Settings, before: dict[str, list[tuple]]) -> None:
    commands.upgrade(settings, no_backup=True)
    status = commands.status(settings)
    assert status.current_revision == revisions.head_revision() and status.partly_applied is None
    assert _rows(settings) == before
    with connect(settings) as connection:
        assert drift(connection) == []


@pytest.mark.parametrize(("revision", "done"), [("0005", 1), ("0005", 2), ("0005", 3), ("0007", 1)])
def test_a_failed_statement_leaves_a_resumable_revision(mysql_settings, monkeypatch, revision, done) -> None:
    """Fail after ``done`` steps: status names the steps done; a rerun finishes with every row.

    (0006, the step before 0007, has no MySQL steps: the failure hits the revision under test.)"""
    parent = revisions.chain()[revisions.ids().index(revision)].down_revision
    commands.upgrade(mysql_settings, parent, no_backup=True)
    with connect(mysql_settings) as connection:
        seed(connection)
    before = _rows(mysql_settings)
    # Alembic loads the revision files anew for each run, importing run_steps from here.
    monkeypatch.setattr(mysql_ddl, "run_steps", _failing_after(done))
    with pytest.raises(MigrationError) as caught:
        commands.upgrade(mysql_settings, no_backup=True)
    assert "failed part-way" in caught.value.message and "NO_SUCH_TYPE" in caught.value.message
    status = commands.status(mysql_settings)
    assert status.current_revision == parent
    assert status.partly_applied is not None
    expected = f"steps 1-{done} of {STEPS[revision]} done"
    if revision == "0007" and _is_mariadb(mysql_settings):  # the shadow copy swapped both CHECKs at once
        expected = "all 3 steps done"
    assert status.partly_applied.startswith(f"{revision} partly applied: {expected}")
    monkeypatch.undo()
    _assert_finishes_at_head(mysql_settings, before)


KILLED = """
import os, time
from llm_proxy_db import commands
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.dialects.mysql import ddl as mysql_ddl
pause = os.environ.get("PAUSE_AFTER_STEP")
if pause:  # hold the process between two steps, so the kill lands there on any machine
    mysql_ddl.step_hook = lambda done: time.sleep(60) if done.startswith(pause) else None
commands.upgrade(resolve_settings(), no_backup=True)
"""
# The kill point: a query that sees it reached, and the step after which the run pauses (None:
# the step itself is long, the fill of 20,000 tokens).
KILL_WHEN = {
    "0005: tokens.id added, being filled": (
        "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'tokens' AND COLUMN_NAME = 'id'",
        None,
    ),
    "0007: new CHECK added, old one being dropped": (
        "SELECT count(*) FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
        "AND CONSTRAINT_NAME = 'audit_events_outcome_check'",
        "add constraint audit_events_outcome_check",
    ),
}


@pytest.mark.parametrize("point", list(KILL_WHEN))
def test_sigkill_mid_revision_then_rerun_reaches_head(mysql_settings, point) -> None:
    """SIGKILL the migrating process once a step's effect is visible; the rerun finishes the job."""
    commands.upgrade(mysql_settings, "0004", no_backup=True)
    with connect(mysql_settings) as connection:
        seed(connection, projects=50, tokens=20_000, events=20_000)
    before = _rows(mysql_settings)
    query, pause = KILL_WHEN[point]
    env = {**settings_env(mysql_settings), **({"PAUSE_AFTER_STEP": pause} if pause else {})}
    proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env, stderr=subprocess.PIPE)
    try:
        _wait_for(mysql_settings, query, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = commands.status(mysql_settings)
    assert status.current_revision != revisions.head_revision(), "the run finished before the kill"
    _assert_finishes_at_head(mysql_settings, before)


def _wait_for(settings: Settings, query: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    with connect(settings) as connection:
        while time.monotonic() < deadline:
            if connection.exec_driver_sql(query).scalar():
                return
            connection.commit()
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the run ended"
            time.sleep(0.005)
    pytest.fail(f"the run never reached the kill point: {query}")


# -- downgrades killed inside a revision -------------------------------------------------------

KILLED_DOWNGRADE = """
import os, pathlib, sys, time
from llm_proxy_db import commands
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.dialects import mysql_ddl
pause, flag = os.environ["PAUSE_AFTER_STEP"], pathlib.Path(os.environ["FLAG"])
def hold(done):  # the kill lands between two steps on any machine
    if done.startswith(pause):
        flag.write_text(done)
        time.sleep(60)
mysql_ddl.step_hook = hold
commands.downgrade(resolve_settings(), sys.argv[1], no_backup=True, allow_data_loss=True)
"""
# revision -> the step after which the downgrade is killed
KILLED_INSIDE = {
    "0003": "drop column tokens.deactivated_at",
    "0005": "move the primary key back",
    "0007": "restore the inline two-value CHECK",
}


def _kill_downgrade_after(settings: Settings, target: str, pause: str, tmp_path) -> None:
    flag = tmp_path / "paused"
    env = {**settings_env(settings), "PAUSE_AFTER_STEP": pause, "FLAG": str(flag)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOWNGRADE, target], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the run ended"
            assert time.monotonic() < deadline, "the downgrade never reached the kill point"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("revision", list(KILLED_INSIDE))
def test_a_downgrade_killed_inside_a_revision_is_shown_refused_and_resumed(mysql_settings, tmp_path, revision) -> None:
    """SIGKILL between two steps of a MySQL downgrade: status shows the revision partly reverted,
    setup (and the startup check) refuse instead of reporting head on a wrong schema, and the
    downgrade run again finishes it; setup then returns to head."""
    from llm_proxy_db.cli.render import render_status
    from llm_proxy_db.errors import SchemaMismatchError

    parent = revisions.chain()[revisions.ids().index(revision)].down_revision
    commands.upgrade(mysql_settings, revision, no_backup=True)
    with connect(mysql_settings) as connection:
        seed(connection)
    _kill_downgrade_after(mysql_settings, parent, KILLED_INSIDE[revision], tmp_path)

    status = commands.status(mysql_settings)
    assert status.current_revision == revision
    (line,) = status.unfinished
    assert line.startswith(f"{revision} partly reverted") and re.search(r"steps 1-\d of \d done", line), line
    assert f"migrate down --to {parent}" in line and "partial:" in render_status(status)
    assert not status.up_to_date or status.pending == []  # the line is what says it
    for run in (lambda: commands.setup(mysql_settings, no_backup=True), lambda: commands.upgrade(mysql_settings)):
        with pytest.raises(SchemaMismatchError) as refused:
            run()
        assert f"migrate down --to {parent}" in (refused.value.hint or "")
    assert commands.status(mysql_settings).current_revision == revision  # nothing was changed

    commands.downgrade(mysql_settings, parent, no_backup=True, allow_data_loss=True)
    status = commands.status(mysql_settings)
    assert status.current_revision == parent and status.unfinished == [] and status.partly_applied is None
    commands.setup(mysql_settings, no_backup=True)
    with connect(mysql_settings) as connection:
        assert drift(connection) == []
    assert commands.status(mysql_settings).unfinished == []


def executor_downgrade(settings: Settings, target: str) -> None:
    """The executor without the safety net (whose data-loss check would refuse first)."""
    from llm_proxy_db.migration.executor import run  # noqa: PLC0415

    with connect(settings) as connection:
        run(connection, target)


def test_a_downgrade_failing_before_its_first_step_leaves_no_mark(mysql_settings) -> None:
    """A refusal inside the downgrade (0007 with denied events, before any DDL) changes nothing:
    no partial line, setup goes on."""
    commands.upgrade(mysql_settings, no_backup=True)
    with connect(mysql_settings) as connection:
        seed(connection, outcomes=("success", "denied"))
    with pytest.raises(DataLossError):  # through the executor alone too: the guard refuses earlier
        executor_downgrade(mysql_settings, "0006")
    assert commands.status(mysql_settings).unfinished == []
    commands.setup(mysql_settings, no_backup=True)
