"""SIGTERM / SIGINT during ``migrate rehearse`` on PostgreSQL leave nothing behind (issue 12, 7).

The real CLI runs in a subprocess (its own TMPDIR) against a database at 0004 holding enough
rows that the pg_dump -> pg_restore copy takes a noticeable time.  Once ``pg_restore`` runs
(the scratch database exists by then) the CLI gets the signal; afterwards no scratch
database of this database, no pg_dump / pg_restore process, no dump file is left, and the
real database is unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from tests.safety_helpers import revision_of, skip_without_pg_client

CLI = Path(sys.executable).with_name("llm-proxy")
ROWS = 200_000
TOOLS = ("pg_dump", "pg_restore")
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + signal number (docs/cli.md)


def _children(pid: int) -> dict[int, str]:
    """The direct children of ``pid`` (from /proc): pid -> command name."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = name
    return found


def _tools_naming(database: str) -> list[str]:
    """Running pg_dump / pg_restore processes whose command line names ``database``."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and Path(argv[0].decode()).name in TOOLS and database.encode() in b" ".join(argv):
            left.append(b" ".join(argv).decode())
    return left


def _scratch_databases(settings: Settings, database: str) -> list[str]:
    with connect(settings) as conn:
        names = conn.exec_driver_sql("SELECT datname FROM pg_database").scalars()
        return [name for name in names if name.startswith(f"{database}_rehearsal_")]


def _state(settings: Settings) -> tuple[str | None, dict[str, int]]:
    with connect(settings) as conn:
        counts = {
            table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in ("projects", "tokens", "audit_events")
        }
    return revision_of(settings), counts


@pytest.fixture
def big_at_0004(postgres_url: URL) -> Settings:
    """A PostgreSQL database at 0004 with ROWS tokens and ROWS audit events."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    skip_without_pg_client(settings)
    commands.upgrade(settings, "0004", no_backup=True)
    with connect(settings) as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name, openai_api_key) VALUES ('p', 'n', 'sk-k')"))
        conn.execute(
            sa.text(
                "INSERT INTO tokens (token, project_id) "
                "SELECT 'tok-' || g || '-' || md5(g::text), 'p' FROM generate_series(1, :n) g"
            ),
            {"n": ROWS},
        )
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (id, timestamp, action, actor, outcome, reason) "
                "SELECT 'ev-' || g, now(), 'token_create', 'admin', 'success', md5(g::text) "
                "FROM generate_series(1, :n) g"
            ),
            {"n": ROWS},
        )
        conn.commit()
    return settings


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_copy_cleans_up(big_at_0004: Settings, tmp_path: Path, signum: int) -> None:
    settings = big_at_0004
    url = settings.sqlalchemy_url()
    database = str(url.database)
    before = _state(settings)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    url_text = url.set(drivername="postgresql").render_as_string(hide_password=False)
    process = subprocess.Popen(
        [str(CLI), "--db-driver", "postgres", "--database-url", url_text, "migrate", "rehearse"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as an operator's Ctrl-C finds it, even when this test runs as a background
        # job (a non-interactive shell starts those with SIGINT ignored, and Python keeps that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        restoring: dict[int, str] = {}
        while time.monotonic() < deadline and process.poll() is None:
            restoring = {p: n for p, n in _children(process.pid).items() if n == "pg_restore"}
            if restoring:
                break
            time.sleep(0.01)
        assert restoring, f"pg_restore never ran (exit {process.poll()}): {process.communicate()}"
        assert _scratch_databases(settings, database), "pg_restore runs into a scratch database"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == EXIT_CODES[signum], (out, err)
    assert "Traceback" not in err
    assert _scratch_databases(settings, database) == []
    assert _tools_naming(database) == []
    assert all(not Path(f"/proc/{pid}").exists() or _is_zombie(pid) for pid in restoring)
    assert list(tmpdir.rglob("*")) == []
    assert _state(settings) == before


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
