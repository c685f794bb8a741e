"""Shared helpers of the safety-net tests: rows as the service writes them, and peeks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.version_table import current_revision

REVISIONS = Path(__file__).parent / "safety_revisions"
FAILING = str(REVISIONS / "failing")
SLOW = str(REVISIONS / "slow")
HEAD = revisions.head_revision()


def seed(settings: Settings, projects: int = 3, tokens_each: int = 2, events: int = 20) -> None:
    """Rows as the service writes them (head schema)."""
    with connect(settings) as conn:
        for p in range(projects):
            conn.execute(
                sa.text("INSERT INTO projects (id, name, api_key) VALUES (:id, :name, :key)"),
                {"id": f"p{p}", "name": f"project {p}", "key": f"sk-secret-{p}"},
            )
            for t in range(tokens_each):
                conn.execute(
                    sa.text("INSERT INTO tokens (id, token, project_id) VALUES (:id, :tok, :pid)"),
                    {"id": f"00000000-0000-4000-8000-{p:06d}{t:06d}", "tok": f"tok-{p}-{t}",
                     "pid": f"p{p}"},
                )
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
                "VALUES (:id, CURRENT_TIMESTAMP, 'token.create', 'admin', 'success')"
            ),
            [{"id": f"e{i}"} for i in range(events)],
        )
        conn.commit()


def rows(settings: Settings) -> dict[str, list[tuple]]:
    """Every row of the three tables, sorted, for before/after comparisons."""
    with connect(settings, create=False) as conn:
        return {
            "projects": sorted(conn.exec_driver_sql("SELECT id, name, api_key FROM projects")),
            "tokens": sorted(conn.exec_driver_sql("SELECT token, project_id FROM tokens")),
            "audit_events": sorted(conn.exec_driver_sql("SELECT id, action FROM audit_events")),
        }


def revision_of(settings: Settings) -> str | None:
    with connect(settings, create=False) as conn:
        return current_revision(conn)


def columns(settings: Settings, table: str) -> list[str]:
    with connect(settings, create=False) as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def tables(settings: Settings) -> set[str]:
    with connect(settings, create=False) as conn:
        return set(sa.inspect(conn).get_table_names())


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that points a child process (library or CLI) at ``settings``."""
    ours = ("DB_", "DATABASE_", "LLM_PROXY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    if settings.is_sqlite:
        env.update(DB_DRIVER="sqlite", DATABASE_PATH=str(settings.database_path))
    else:
        url = settings.sqlalchemy_url().render_as_string(hide_password=False)
        env.update(DB_DRIVER=settings.driver, DATABASE_URL=url)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def backups_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".bak"))


def pg_client_problem(settings: Settings) -> str | None:
    """Why ``pg_dump`` cannot work against this server (missing, or older than it), or None."""
    executable = shutil.which("pg_dump")
    if executable is None:
        return "pg_dump is not installed"
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"\)\s*(\d+)", version.stdout)
    client = int(match.group(1)) if match else 0
    with connect(settings) as conn:
        server = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) // 10000
    return None if client >= server else f"pg_dump {client} cannot dump a PostgreSQL {server} server"


def skip_without_pg_client(settings: Settings) -> None:
    """Skip a PostgreSQL test that needs pg_dump / pg_restore when they cannot work here."""
    if settings.is_mysql:
        from llm_proxy_db.dialects.mysql import dump_client

        if dump_client() is None:
            pytest.skip("neither mariadb-dump nor mysqldump is installed")
        return
    if not settings.is_sqlite and (problem := pg_client_problem(settings)):
        pytest.skip(problem)


def server_database_at_head(settings: Settings, *, projects: int, tokens_each: int, events: int) -> Settings:
    """The dialect's database at head with rows (skipped without the dialect's client tools)."""
    from llm_proxy_db import commands

    skip_without_pg_client(settings)
    commands.upgrade(settings, no_backup=True)
    seed(settings, projects=projects, tokens_each=tokens_each, events=events)
    return settings


def another_process_can_write(path: Path) -> bool:
    """Whether a separate process gets the exclusive lock a commit needs on ``path`` at once (it
    cannot while this process holds a read lock in rollback-journal mode, or a write lock)."""
    import subprocess
    import sys

    program = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute('ROLLBACK')\n"
    )
    return subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True).returncode == 0
