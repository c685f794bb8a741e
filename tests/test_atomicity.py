"""A revision that fails half-way leaves the database exactly at the previous revision."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError, SchemaMismatchError
from llm_proxy_db.migration import executor, revisions
from tests.mysql_helpers import NOT_TRANSACTIONAL, skip_on_mysql
from tests.schema_description import describe
from tests.seed import seed, snapshot

FAILING = str(Path(__file__).parent / "fixtures" / "failing_versions")


def test_failed_revision_rolls_back_a_rebuild_entirely(settings):
    skip_on_mysql(settings, NOT_TRANSACTIONAL)
    commands.upgrade(settings)
    with connect(settings) as connection:
        seed(connection)
        rows, schema = snapshot(connection), describe(connection)

    with pytest.raises(MigrationError) as excinfo:
        commands.upgrade(settings, "9001", version_locations=[FAILING])

    error = excinfo.value
    assert error.failed_revision == "9001"
    assert error.current_revision == "0007"
    assert "fails on purpose" in error.message and "at revision 0007" in error.message
    assert commands.status(settings).current_revision == "0007"
    with connect(settings) as connection:
        assert snapshot(connection) == rows
        assert describe(connection) == schema
        tables = sa.inspect(connection).get_table_names()
    assert not [name for name in tables if name.startswith("_alembic_tmp")]


def test_sqlite_revision_with_dangling_foreign_keys_is_refused(sqlite_settings):
    """A rebuild must not commit while a token points at no project; nothing is lost.

    The guarded path refuses such a database before any revision (see
    test_adoption_review); the revision's own check is exercised on the executor.
    """
    commands.upgrade(sqlite_settings, "0004")
    with connect(sqlite_settings, foreign_keys=False) as connection:
        seed(connection, projects=2, tokens=10, events=0)
        connection.execute(sa.text("UPDATE tokens SET project_id = 'gone' WHERE token = 'tok-00003'"))
        connection.commit()
        before = snapshot(connection)

    with pytest.raises(SchemaMismatchError, match="already has 1 foreign key violation"):
        commands.upgrade(sqlite_settings)
    with connect(sqlite_settings, foreign_keys=False) as connection, pytest.raises(
        MigrationError
    ) as excinfo:
        executor.run(connection, revisions.head_revision())

    assert "foreign key violation" in excinfo.value.message
    assert excinfo.value.failed_revision == "0005"
    assert commands.status(sqlite_settings).current_revision == "0004"
    with connect(sqlite_settings) as connection:
        assert snapshot(connection) == before
