"""pg_dump / pg_restore wrappers and scratch databases, on the real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import postgresql
from llm_proxy_db.errors import BackupError, ConfigError
from tests.safety_helpers import HEAD, revision_of, rows, seed, skip_without_pg_client

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pg(postgres_url: URL) -> Settings:
    """The test database; with trust authentication a password exercises the PGPASSWORD path."""
    settings = Settings(driver="postgres", database_url=postgres_url)
    skip_without_pg_client(settings)
    if postgres_url.password is None:
        settings = Settings(driver="postgres", database_url=postgres_url.set(password="s3cret"))
    return settings


def test_dump_and_restore_into_a_scratch_database(pg: Settings, tmp_path: Path) -> None:
    commands.upgrade(pg)
    seed(pg)
    dump = postgresql.pg_dump(pg, tmp_path / "db.dump")
    with postgresql.scratch_database(pg.sqlalchemy_url(), "test") as scratch:
        postgresql.pg_restore(scratch, dump)
        assert revision_of(scratch) == HEAD and rows(scratch) == rows(pg)
        name = scratch.sqlalchemy_url().database
    with connect(pg) as conn:
        assert name not in conn.exec_driver_sql("SELECT datname FROM pg_database").scalars().all()


def test_a_failing_dump_leaves_no_file_and_no_password(pg: Settings, tmp_path: Path) -> None:
    missing = Settings(driver="postgres", database_url=pg.sqlalchemy_url().set(database="no_such_db_x"))
    with pytest.raises(BackupError) as caught:
        postgresql.pg_dump(missing, tmp_path / "db.dump")
    password = str(pg.sqlalchemy_url().password)
    assert "pg_dump on" in caught.value.message and password not in caught.value.message
    assert not (tmp_path / "db.dump").exists()


def test_a_missing_client_tool_is_a_clear_error(pg: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match="pg_restore is not installed"):
        postgresql.pg_restore(pg, tmp_path / "db.dump")


def test_a_user_without_createdb_gets_a_clear_error(pg: Settings) -> None:
    role = "llmproxy_nocreatedb"
    with connect(pg) as conn:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOCREATEDB")
        conn.commit()
    try:
        weak = Settings(driver="postgres", database_url=pg.sqlalchemy_url().set(username=role))
        with pytest.raises(ConfigError, match="cannot create a scratch database"):
            with postgresql.scratch_database(weak.sqlalchemy_url(), "test"):
                pass  # pragma: no cover - never reached
    finally:
        with connect(pg) as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
            conn.commit()
