"""PostgreSQL: ``db restore`` killed (SIGKILL) while psql still runs the dump's statements
(issue 21 hostile review, item 19 class).

The load runs in one psql transaction.  COMMIT was written into psql's input as soon as
pg_restore had written the whole dump, while psql still built the indexes and keys (seconds on
a real table): the tool killed then, psql read the queued COMMIT and committed the restore on
its own, without its run-log entry, and the replaced database's log was gone.  COMMIT is now
sent once psql has run every statement; killed before, psql reads the end of its input and the
transaction rolls back: the database and its log stay as they were.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from tests.safety_helpers import settings_env, skip_without_pg_client

CLI = [sys.executable, "-c", "import sys; from llm_proxy_db.cli.fast_path import main; "
       "sys.argv = ['llm-proxy-db', *sys.argv[1:]]; main()"]
TOKENS = 200_000


def _raw(url: URL) -> psycopg.Connection:
    return psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_restore_killed_while_psql_builds_the_indexes_changes_nothing(
    postgres_url: URL, postgres_server_url: URL, tmp_path: Path
) -> None:
    settings = Settings(driver="postgres", database_url=postgres_url)
    skip_without_pg_client(settings)
    commands.upgrade(settings, no_backup=True)
    with _raw(postgres_url) as raw:
        raw.execute("INSERT INTO projects (id, name, api_key) VALUES ('p', 'p', 'k')")
        raw.execute(f"INSERT INTO tokens (token, project_id) SELECT 't' || g, 'p' FROM generate_series(1, {TOKENS}) g")
    env = settings_env(settings)
    dump = tmp_path / "full.dump"
    _cli(env, "db", "backup", "--out", str(dump))
    with _raw(postgres_url) as raw:
        raw.execute("DELETE FROM tokens WHERE token IN ('t1', 't2', 't3')")  # what the restore would replace
    log_before = json.loads(_cli(env, "migrate", "log", "--json"))

    restore = subprocess.Popen([*CLI, "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "b")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = postgres_url.database
    with _raw(postgres_server_url.set(database="postgres")) as watcher:
        deadline = time.monotonic() + 120
        while True:  # psql past the rows (COPY), building an index or a key: the last statements
            assert restore.poll() is None, "the restore ended before psql built an index: nothing to test"
            assert time.monotonic() < deadline
            row = watcher.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = %s AND application_name = 'psql' "
                "AND state = 'active'", (database,)).fetchone()
            if row and ("CREATE INDEX" in row[0] or "ADD CONSTRAINT" in row[0]):
                break
            time.sleep(0.005)
        restore.send_signal(signal.SIGKILL)
        restore.wait()
        while watcher.execute(  # the orphaned psql finishes what it was given, then ends
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'psql'",
            (database,)).fetchone()[0]:
            assert time.monotonic() < deadline, "psql never ended"
            time.sleep(0.05)

    with _raw(postgres_url) as raw:
        assert raw.execute("SELECT count(*) FROM tokens").fetchone()[0] == TOKENS - 3  # not restored
    assert json.loads(_cli(env, "migrate", "log", "--json")) == log_before
    _cli(env, "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "b"))  # a full one works
    with _raw(postgres_url) as raw:
        assert raw.execute("SELECT count(*) FROM tokens").fetchone()[0] == TOKENS
    log = json.loads(_cli(env, "migrate", "log", "--json"))
    assert log[-1]["action"] == "restore"
