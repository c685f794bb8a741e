"""SIGTERM / SIGINT during a PostgreSQL or MySQL migration (issue 21 hostile review, F4).

On PostgreSQL the run ended with exit 4 and SQLAlchemy's "Can't reconnect until invalid
transaction is rolled back" (the signal's exception invalidated the connection and the cleanup
used it); on MySQL with exit 143 and no line at all.  Now both behave as SQLite does
(``tests/test_sqlite_signal_rollback.py``): the run stops at once, one ``Error:`` line says it
was interrupted and in what state it left the database (here: partly applied, a rerun finishes
it), a ``Hint:`` follows, and the exit code is 128 + the signal (docs/cli.md).  No row is lost.

The signal lands mid-revision deterministically: the process pauses at a step boundary (the
hooks the kill tests use: ``pg_online.boundary_hook``, ``mysql_ddl.step_hook``), either in
Python (``sleep``) or inside a statement on the migration's own connection (``pg_sleep`` /
``SLEEP``), the case that invalidates the connection.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import revisions
from tests.safety_helpers import settings_env
from tests.seed import seed, snapshot

CHILD = """
import os, pathlib, sys, time
flag, pause, mode = pathlib.Path(os.environ["FLAG"]), os.environ["PAUSE_AT"], os.environ["PAUSE_IN"]
def hold(name):
    if name.startswith(pause):
        flag.write_text(name)
        if mode == "statement":  # inside a query on the migration's connection
            from alembic import op
            op.execute("SELECT pg_sleep(60)" if os.environ["DB_DRIVER"] == "postgres" else "SELECT SLEEP(60)")
        time.sleep(60)
from llm_proxy_db.migration import pg_online
from llm_proxy_db.dialects.mysql import ddl as mysql_ddl
from llm_proxy_db.dialects import mysql_ddl as mysql_down_ddl
pg_online.boundary_hook = hold
mysql_ddl.step_hook = mysql_down_ddl.step_hook = hold
from llm_proxy_db.cli.fast_path import main
sys.argv = ["llm-proxy-db", *sys.argv[1:]]
main()
"""
# dialect -> (the step after which the run pauses, the revision it is in)
PAUSES = {"postgresql": ("tokens.id added", "0005"), "mysql": ("add column tokens.id", "0005")}
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
IGNORE_TOKEN_ID = {"tokens": {"id"}}
CASES = [
    (dialect, signum, where)
    for dialect in ("postgresql", "mysql")
    for signum, where in ((signal.SIGTERM, "python"), (signal.SIGTERM, "statement"), (signal.SIGINT, "statement"))
]


@pytest.fixture
def server_settings(request: pytest.FixtureRequest, dialect: str) -> Settings:
    if dialect == "postgresql":
        return Settings(driver="postgres", database_url=request.getfixturevalue("postgres_url"))
    return Settings(driver="mysql", database_url=request.getfixturevalue("mysql_url"))


def _rows(settings: Settings) -> dict[str, list[tuple]]:
    with connect(settings) as connection:
        return snapshot(connection, exclude=IGNORE_TOKEN_ID)


def _signalled(argv: list[str], env: dict[str, str], flag: Path, signum: int) -> tuple[int, str, float]:
    """Run the CLI with ``argv`` until it pauses (``flag`` written), send ``signum``: (exit code,
    output, seconds from the signal to the exit)."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the run never reached the pause"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the sleep / the statement
        sent = time.monotonic()
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
        return process.returncode, output, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _says_interrupted(output: str, signum: int, during: str, state: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    name = signal.Signals(signum).name
    assert f"interrupted by {name} during {during}: not rolled back, {state}" in errors[0], output
    assert any(line.startswith("Hint: run the command again") for line in output.splitlines()), output
    assert "Traceback" not in output and "reconnect" not in output, output


@pytest.mark.parametrize(
    ("dialect", "signum", "where"),
    [pytest.param(*case, marks=getattr(pytest.mark, case[0])) for case in CASES],
    ids=[f"{d}-{signal.Signals(s).name}-in-{w}" for d, s, w in CASES],
)
def test_a_signal_mid_revision_stops_at_once_and_says_so(
    server_settings: Settings, dialect: str, signum: int, where: str, tmp_path: Path
) -> None:
    commands.upgrade(server_settings, "0004", no_backup=True)
    with connect(server_settings) as connection:
        seed(connection, projects=3, tokens=50, events=20)
    before = _rows(server_settings)
    pause, revision = PAUSES[dialect]
    flag = tmp_path / "paused"
    env = {**settings_env(server_settings), "FLAG": str(flag), "PAUSE_AT": pause, "PAUSE_IN": where}
    code, output, stopped_after = _signalled(["setup", "--no-backup"], env, flag, signum)

    assert code == EXIT_CODES[signum], output
    _says_interrupted(output, signum, f"upgrade of revision {revision}", f"{revision} partly applied")
    assert stopped_after < 10, f"stopped {stopped_after:.1f}s after the signal"
    status = commands.status(server_settings)
    assert status.current_revision == "0004"
    assert status.partly_applied and status.partly_applied.startswith(f"{revision} partly applied")
    commands.setup(server_settings, no_backup=True)
    assert commands.status(server_settings).current_revision == revisions.head_revision()
    assert _rows(server_settings) == before
    with connect(server_settings) as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM tokens WHERE id IS NULL")).scalar() == 0


@pytest.mark.mysql
@pytest.mark.parametrize("dialect", ["mysql"])
def test_a_signal_inside_a_mysql_downgrade_says_partly_reverted(server_settings: Settings, tmp_path: Path) -> None:
    """A MySQL downgrade commits step by step: the line says the revision is partly reverted, the
    marker stays (status shows it) and the rerun of the downgrade finishes it."""
    commands.upgrade(server_settings, no_backup=True)
    with connect(server_settings) as connection:
        seed(connection, projects=3, tokens=50, events=20)
    before = _rows(server_settings)
    flag = tmp_path / "paused"
    env = {**settings_env(server_settings), "FLAG": str(flag), "PAUSE_AT": "move the primary key back",
           "PAUSE_IN": "statement"}
    argv = ["migrate", "down", "--to", "0004", "--allow-data-loss", "--no-backup"]
    code, output, _ = _signalled(argv, env, flag, signal.SIGTERM)

    assert code == 143, output
    _says_interrupted(output, signal.SIGTERM, "downgrade of revision 0005", "0005 partly reverted")
    status = commands.status(server_settings)
    assert status.current_revision == "0005" and status.unfinished, status
    commands.downgrade(server_settings, "0004", no_backup=True, allow_data_loss=True)
    commands.setup(server_settings, no_backup=True)
    assert commands.status(server_settings).current_revision == revisions.head_revision()
    assert _rows(server_settings) == before
