"""The head schema: our metadata, the migrated database and the service's reference DDL agree."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from llm_proxy_db import commands
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.database import connect
from tests.schema_description import describe, sql_statements

FIXTURES = Path(__file__).parent / "fixtures"


def test_head_matches_the_reference_ddl(settings, dialect, make_settings):
    """After upgrade head, the schema is the one the service itself creates (section 4)."""
    commands.upgrade(settings)
    reference = make_settings()
    with connect(reference) as connection:
        ddl = (FIXTURES / f"head_{dialect}.sql").read_text()
        if dialect == "sqlite":
            connection.connection.driver_connection.executescript(ddl)
        elif dialect == "mysql":  # one statement per call (no multi-statements in PyMySQL)
            for statement in sql_statements(ddl):
                connection.exec_driver_sql(statement)
        else:
            connection.exec_driver_sql(ddl)
            connection.commit()
        expected = describe(connection)
    with connect(settings) as connection:
        assert describe(connection) == expected


def test_alembic_check_finds_no_difference_at_head(settings):
    """The head metadata (autogenerate's target) and the revisions agree."""
    commands.upgrade(settings)
    with connect(settings, foreign_keys=False) as connection:
        command.check(make_config(settings, connection=connection))
