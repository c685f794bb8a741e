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
pg_online.boundary_hook = hold
mysql_ddl.step_hook = hold
from llm_proxy_db.cli.fast_path import main
sys.argv = ["llm-proxy-db", "setup", "--no-backup"]
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
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
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
        stopped_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == EXIT_CODES[signum], output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    name = signal.Signals(signum).name
    assert len(errors) == 1, output
    assert f"interrupted by {name} during upgrade of revision {revision}" in errors[0], output
    assert "partly applied" in errors[0] and "not rolled back" in errors[0], output
    assert any(line.startswith("Hint: run the command again") for line in output.splitlines()), output
    assert "Traceback" not in output and "reconnect" not in output, output
    assert stopped_after < 10, f"stopped {stopped_after:.1f}s after the signal"

    status = commands.status(server_settings)
    assert status.current_revision == "0004"
    assert status.partly_applied and status.partly_applied.startswith(f"{revision} partly applied")
    commands.setup(server_settings, no_backup=True)
    assert commands.status(server_settings).current_revision == revisions.head_revision()
    assert _rows(server_settings) == before
    with connect(server_settings) as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM tokens WHERE id IS NULL")).scalar() == 0
