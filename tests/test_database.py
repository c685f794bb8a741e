"""Opening databases: clear errors for bad paths and unreachable servers, no secrets shown."""

from __future__ import annotations

import pytest

from llm_proxy_db.config.settings import Settings, resolve_settings
from llm_proxy_db.database import connect
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
