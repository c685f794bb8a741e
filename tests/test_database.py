"""Opening databases: clear errors for bad paths and unreachable servers, no secrets shown."""

from __future__ import annotations

import pytest

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import DatabaseConnectionError


def test_sqlite_directory_is_created(tmp_path):
    settings = Settings(driver="sqlite", database_path=tmp_path / "a" / "b" / "x.db")
    with connect(settings) as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    assert (tmp_path / "a" / "b").is_dir()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database")
    with pytest.raises(DatabaseConnectionError, match="is not a SQLite database"):
        with connect(Settings(driver="sqlite", database_path=path)):
            pass
    assert path.read_text() == "hello, not a database"


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(DatabaseConnectionError, match="is a directory"):
        with connect(Settings(driver="sqlite", database_path=tmp_path)):
            pass


def test_reads_do_not_create_files(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(DatabaseConnectionError, match="does not exist"):
        with connect(Settings(driver="sqlite", database_path=path), create=False):
            pass
    assert not path.exists()


def test_uncreatable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseConnectionError, match="cannot create directory"):
        with connect(Settings(driver="sqlite", database_path=blocker / "sub" / "x.db")):
            pass


def test_unreachable_server_names_the_masked_url():
    settings = resolve_settings(database_url="postgres://user:s3cret@127.0.0.1:1/db", env={})
    with pytest.raises(DatabaseConnectionError) as excinfo, connect(settings):
        pass
    assert "user:***@127.0.0.1:1/db" in excinfo.value.message
    assert "s3cret" not in excinfo.value.message


def test_the_header_check_keeps_this_process_s_locks(tmp_path) -> None:
    """Checking a database's header while another connection of this process holds its write
    lock must not drop that POSIX lock (a plain open() and close() would): no other process
    may get in."""
    import sqlite3

    from llm_proxy_db.dialects.sqlite import is_sqlite_file
    from tests.safety_helpers import another_process_can_write

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=delete")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        assert is_sqlite_file(path)
        writable = another_process_can_write(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not writable
    (tmp_path / "garbage.db").write_bytes(b"not a database at all, just text" * 10)
    assert not is_sqlite_file(tmp_path / "garbage.db")
    assert not is_sqlite_file(tmp_path / "missing.db")
    (tmp_path / "new.db").write_bytes(b"")
    assert is_sqlite_file(tmp_path / "new.db")
