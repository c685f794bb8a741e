"""`db backup` then `db restore` on every dialect, and the server restore's refusals.

The round trip proves every row comes back (the projects' API keys and the tokens included)
and that the dump stays private (mode 0600) on PostgreSQL and MySQL/MariaDB; the refusals
prove a server database is only replaced when asked (--force), after a dump of what it held,
that a file which is not a complete dump of ours is refused before anything is touched, and
that a missing client tool is a clear exit code 8.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import BackupError, UnknownRevisionError
from llm_proxy_db.safety import backup, locking
from tests.safety_helpers import HEAD, revision_of, server_database_at_head, skip_without_pg_client
from tests.test_cli_safety import cli

TABLES = ("projects", "tokens", "audit_events")


def everything(settings: Settings) -> dict[str, list[tuple]]:
    """Every column of every row of our tables, in primary-key order."""
    with connect(settings, create=False) as conn:
        return {
            table: [tuple(row) for row in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]
            for table in TABLES
        }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def filled(settings: Settings) -> Settings:
    """The dialect's database at head with projects, tokens and audit events."""
    return server_database_at_head(settings, projects=5, tokens_each=4, events=30)


def test_a_restore_into_a_new_database_brings_back_every_row(
    filled: Settings, make_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    before = everything(filled)
    assert [row for row in before["tokens"] if row]  # the secrets are there to be compared
    dump = backup.backup(filled, tmp_path / "out")
    if not filled.is_sqlite:
        assert mode(dump) == 0o600
    target = make_settings()
    result = backup.restore(target, dump, backup_dir=tmp_path / "safety")
    assert everything(target) == before
    assert result.revision == HEAD == revision_of(target) and result.safety_copy is None
    if not filled.is_sqlite:
        assert mode(dump) == 0o600 and result.origin == filled.sqlalchemy_url().database


def test_a_forced_restore_replaces_the_rows_and_keeps_a_private_safety_dump(
    filled: Settings, tmp_path: Path
) -> None:
    before = everything(filled)
    dump = backup.backup(filled, tmp_path)
    with connect(filled) as conn:
        conn.exec_driver_sql("DELETE FROM audit_events")
        conn.exec_driver_sql("UPDATE projects SET api_key = 'changed'")
        conn.commit()
    result = backup.restore(filled, dump, backup_dir=tmp_path / "safety", force=True)
    assert everything(filled) == before
    assert result.safety_copy is not None and result.safety_copy.parent == tmp_path / "safety"
    if not filled.is_sqlite:
        assert mode(result.safety_copy) == 0o600 and mode(dump) == 0o600
        assert "pre-restore" in result.safety_copy.name


def test_the_restore_is_in_the_run_log(filled: Settings, tmp_path: Path) -> None:
    dump = backup.backup(filled, tmp_path)
    backup.restore(filled, dump, backup_dir=tmp_path, force=True)
    result = cli(filled, "migrate", "log")
    assert result.exit_code == 0, result.output
    assert "restore" in result.output


def test_a_dump_of_an_older_revision_comes_back_at_that_revision(
    settings: Settings, make_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    skip_without_pg_client(settings)
    commands.upgrade(settings, "0004", no_backup=True)
    dump = backup.backup(settings, tmp_path)
    target = make_settings()
    commands.upgrade(target, no_backup=True)
    backup.restore(target, dump, backup_dir=tmp_path, force=True)
    assert revision_of(target) == "0004"
    commands.upgrade(target, no_backup=True)
    assert revision_of(target) == HEAD


# --- servers: the refusals -------------------------------------------------------------


# The `dialect` fixture narrowed to the servers (SQLite's refusals are in test_backup.py).
servers = pytest.mark.parametrize(
    "dialect",
    [pytest.param("postgresql", marks=pytest.mark.postgresql), pytest.param("mysql", marks=pytest.mark.mysql)],
)


@pytest.fixture
def server(filled: Settings) -> Settings:
    """A server database at head with rows."""
    return filled


@servers
def test_a_database_that_is_not_empty_is_refused_without_force(server: Settings, tmp_path: Path) -> None:
    dump = backup.backup(server, tmp_path)
    with connect(server) as conn:
        conn.exec_driver_sql("DELETE FROM audit_events")
        conn.commit()
    before = everything(server)
    result = cli(server, "db", "restore", str(dump))
    assert result.exit_code == 8, result.output
    assert "is not empty" in result.output and "--force" in result.output
    assert everything(server) == before and not list(tmp_path.glob("*pre-restore*"))


@servers
def test_the_cli_restores_with_force_and_reports_what_it_did(server: Settings, tmp_path: Path) -> None:
    dump = backup.backup(server, tmp_path)
    result = cli(server, "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "kept"))
    assert result.exit_code == 0, result.output
    assert f"restored: {dump} (revision {HEAD})" in result.output
    assert "previous database kept as:" in result.output
    assert f"backup taken of: {server.sqlalchemy_url().database}" in result.output


@servers
@pytest.mark.parametrize("content", [b"", b"garbage, not a dump\n", b"\x00\xff" * 100])
def test_a_file_that_is_no_dump_is_refused_before_anything_is_touched(
    server: Settings, tmp_path: Path, content: bytes
) -> None:
    before = everything(server)
    bad = tmp_path / "bad.dump"
    bad.write_bytes(content)
    with pytest.raises(BackupError):
        backup.restore(server, bad, backup_dir=tmp_path, force=True)
    assert everything(server) == before and not list(tmp_path.glob("*pre-restore*"))


@servers
def test_a_truncated_dump_is_refused(server: Settings, tmp_path: Path) -> None:
    dump = backup.backup(server, tmp_path)
    cut = tmp_path / "cut"
    cut.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    before = everything(server)
    with pytest.raises(BackupError):
        backup.restore(server, cut, backup_dir=tmp_path, force=True)
    assert everything(server) == before


@servers
def test_a_dump_without_our_tables_is_refused(
    server: Settings, make_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    other = make_settings()
    with connect(other) as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)")
        conn.commit()
    dump = backup.backup(other, tmp_path)
    with pytest.raises(BackupError, match="does not hold an llm-proxy database"):
        backup.restore(make_settings(), dump, backup_dir=tmp_path)


@servers
def test_a_dump_from_a_newer_release_is_refused(
    server: Settings, make_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    with connect(server) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()
    dump = backup.backup(server, tmp_path)
    target = make_settings()
    with pytest.raises(UnknownRevisionError, match="9999"):
        backup.restore(target, dump, backup_dir=tmp_path)
    with connect(target) as conn:
        assert sa.inspect(conn).get_table_names() == []


@servers
def test_a_missing_client_tool_is_exit_code_8(server: Settings, tmp_path: Path, monkeypatch) -> None:
    dump = backup.backup(server, tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    result = cli(server, "db", "restore", str(dump), "--force")
    assert result.exit_code == 8, result.output
    assert "not installed" in result.output
    assert revision_of(server) == HEAD


@servers
def test_restore_waits_for_the_migration_lock(server: Settings, tmp_path: Path) -> None:
    dump = backup.backup(server, tmp_path)
    with connect(server) as holder, locking.migration_lock(server, holder, timeout=5):
        result = cli(server, "db", "restore", str(dump), "--force", "--lock-timeout", "1")
    assert result.exit_code == 7, result.output
    assert not list(tmp_path.glob("*pre-restore*"))


@servers
def test_a_failing_connection_never_shows_the_password(server: Settings, tmp_path: Path) -> None:
    dump = backup.backup(server, tmp_path)
    url = server.sqlalchemy_url().set(password="s3cret-pw", username="no_such_user_x")
    wrong = Settings(driver=server.driver, database_url=url)
    result = cli(wrong, "db", "restore", str(dump))
    assert result.exit_code != 0
    assert "s3cret-pw" not in result.output


@servers
def test_a_lossy_downgrade_without_the_dump_tool_changes_nothing(server: Settings, monkeypatch) -> None:
    """The server's dump before a downgrade allowed to lose data: no tool, no dump, no downgrade."""
    monkeypatch.setenv("PATH", "/nonexistent")
    result = cli(server, "migrate", "down", "--to", "0002", "--allow-data-loss")
    assert result.exit_code == 8, result.output
    assert "installed" in result.output and "--no-backup" in result.output
    assert revision_of(server) == HEAD


@pytest.mark.parametrize("dialect", [pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_failed_load_names_the_safety_dump(server: Settings, tmp_path: Path) -> None:
    """A dump that checks out but fails half-way (MySQL loads statement by statement): the
    error says where the previous contents are, and restoring that brings them back."""
    before = everything(server)
    dump = backup.backup(server, tmp_path)
    text = dump.read_text()
    broken = tmp_path / "broken.sql"
    broken.write_text(text.replace("-- Dump completed", "INSERT INTO no_such_table VALUES (1);\n-- Dump completed"))
    with pytest.raises(BackupError) as caught:
        backup.restore(server, broken, backup_dir=tmp_path / "kept", force=True)
    safety = next((tmp_path / "kept").glob("*.pre-restore.sql"))
    assert f"llm-proxy-db db restore --force {safety}" in (caught.value.hint or "")
    backup.restore(server, safety, backup_dir=tmp_path / "kept", force=True)
    assert everything(server) == before


@servers
def test_two_dumps_within_one_second_get_two_names(server: Settings, tmp_path: Path) -> None:
    first, second = backup.backup(server, backup_dir=tmp_path), backup.backup(server, backup_dir=tmp_path)
    assert first != second and first.exists() and second.exists()


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_a_forced_postgres_restore_replaces_every_kind_of_object(server: Settings, tmp_path: Path) -> None:
    """Views, materialized views, sequences, routines, aggregates, types and domains of the
    schema are dropped in the load's transaction, then come back from the dump."""
    ddl = [
        "CREATE TYPE ops_mood AS ENUM ('ok', 'sad')",
        "CREATE DOMAIN ops_positive AS int CHECK (VALUE > 0)",
        "CREATE TYPE ops_pair AS (a int, b int)",
        "CREATE SEQUENCE ops_counter",
        "CREATE FUNCTION ops_helper(x ops_positive) RETURNS int LANGUAGE sql AS 'SELECT x'",
        "CREATE PROCEDURE ops_proc() LANGUAGE sql AS 'SELECT 1'",
        "CREATE AGGREGATE ops_sum(int) (SFUNC = int4pl, STYPE = int)",
        "CREATE VIEW ops_view AS SELECT id FROM projects",
        "CREATE MATERIALIZED VIEW ops_matview AS SELECT id FROM projects",
    ]
    with connect(server) as conn:
        for statement in ddl:
            conn.exec_driver_sql(statement)
        conn.commit()
    before = everything(server)
    dump = backup.backup(server, tmp_path / "out")
    backup.restore(server, dump, backup_dir=tmp_path / "safety", force=True)
    assert everything(server) == before
    with connect(server, create=False) as conn:
        assert conn.exec_driver_sql("SELECT ops_sum(ops_helper(2))").scalar() == 2
        assert conn.exec_driver_sql("SELECT count(*) FROM ops_matview").scalar() == len(before["projects"])


@pytest.mark.postgresql
@pytest.mark.parametrize("dialect", ["postgresql"])
def test_a_postgres_load_cut_short_commits_nothing(server: Settings, tmp_path: Path) -> None:
    """pg_restore stopping half-way (a dump damaged after the checks): no COMMIT is sent, so
    the drop of the old contents is rolled back with the rest."""
    from llm_proxy_db.dialects import postgresql

    before = everything(server)
    dump = backup.backup(server, tmp_path / "out")
    cut = tmp_path / "cut.dump"
    cut.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    with pytest.raises(BackupError) as caught:
        postgresql.load_dump(server, cut)
    assert "nothing was changed" in caught.value.message
    assert "pg_restore: error:" in caught.value.message
    assert everything(server) == before
