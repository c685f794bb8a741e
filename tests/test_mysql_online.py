"""The MySQL revisions' online mechanics: ALGORITHM clauses with their fallback, the batched
fill of tokens.id, and rows the service inserts while 0005 runs.

(How long the service's writes wait is measured in bench/, not here.)
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

from llm_proxy_db import commands
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.mysql import ddl as mysql_ddl
from llm_proxy_db.migration import revisions
from llm_proxy_db.schema.drift import drift
from tests.seed import seed, snapshot

pytestmark = pytest.mark.mysql
RUN_STEPS = mysql_ddl.run_steps


@pytest.fixture
def mysql_settings(mysql_url: sa.engine.URL) -> Settings:
    """An empty MySQL/MariaDB database."""
    return Settings(driver="mysql", database_url=mysql_url)


def _operations(connection: sa.engine.Connection, reports: list[str]) -> Operations:
    """Alembic operations on ``connection`` whose progress reports land in ``reports``."""
    config = Config()
    config.attributes["report"] = lambda kind, detail, **_: reports.append(detail)
    environment = EnvironmentContext(config, ScriptDirectory.from_config(make_config(connection=connection)))
    return Operations(MigrationContext.configure(connection, environment_context=environment))


def test_a_clause_the_server_refuses_falls_back_to_the_plain_statement(mysql_settings) -> None:
    """A CHECK cannot be added INSTANT (InnoDB validates it by copying): the plain ALTER runs."""
    reports: list[str] = []
    with connect(mysql_settings) as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with Operations.context(_operations(connection, reports).migration_context):
            mysql_ddl.alter("t", "ADD COLUMN y INTEGER NULL", "INSTANT")
            mysql_ddl.alter("t", "ADD CONSTRAINT t_x CHECK (x > 0)", "INSTANT")
        names = [row["name"] for row in mysql_ddl.check_constraints(connection, "t")]
        assert mysql_ddl.has_column(connection, "t", "y") and names == ["t_x"]
    assert reports == ["t: ALGORITHM=INSTANT refused by the server, altered without it"]


def test_other_errors_are_not_swallowed(mysql_settings) -> None:
    """Only the refusal of the ALGORITHM clause falls back; a wrong statement still fails."""
    with connect(mysql_settings) as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with Operations.context(_operations(connection, []).migration_context):
            with pytest.raises(sa.exc.DBAPIError):
                mysql_ddl.alter("t", "ADD COLUMN x INTEGER", "INSTANT")


def test_tokens_inserted_while_0005_runs_get_an_id(mysql_settings, monkeypatch) -> None:
    """Stopped after the UUID() default (step 2), a legacy INSERT without ``id`` gets one;
    the rerun fills the rest in several batches and reaches head with every row."""
    commands.upgrade(mysql_settings, "0004", no_backup=True)
    with connect(mysql_settings) as connection:
        seed(connection, tokens=60)
    monkeypatch.setattr(mysql_ddl, "FILL_BATCH", 7)

    def two_steps(steps: list[mysql_ddl.Step], connection: object) -> None:
        RUN_STEPS(steps[:2], connection)  # type: ignore[arg-type]
        raise RuntimeError("stopped after step 2")

    monkeypatch.setattr(mysql_ddl, "run_steps", two_steps)
    with pytest.raises(Exception, match="stopped after step 2"):
        commands.upgrade(mysql_settings, no_backup=True)
    monkeypatch.setattr(mysql_ddl, "run_steps", RUN_STEPS)
    with connect(mysql_settings) as connection:
        project = connection.exec_driver_sql("SELECT id FROM projects LIMIT 1").scalar()
        connection.exec_driver_sql(
            "INSERT INTO tokens (token, project_id, created_at) VALUES ('tok_legacy_insert', %s, NOW(6))", (project,)
        )
        connection.commit()
        new_id = connection.exec_driver_sql("SELECT id FROM tokens WHERE token = 'tok_legacy_insert'").scalar()
        assert new_id and len(new_id) == 36
        assert connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE id IS NULL").scalar() == 60
        before = snapshot(connection, exclude={"tokens": {"id"}})
    commands.upgrade(mysql_settings, no_backup=True)
    assert commands.status(mysql_settings).current_revision == revisions.head_revision()
    with connect(mysql_settings) as connection:
        assert snapshot(connection, exclude={"tokens": {"id"}}) == before
        ids = [row[0] for row in connection.exec_driver_sql("SELECT id FROM tokens")]
        assert len(ids) == 61 and len(set(ids)) == 61 and all(len(i) == 36 for i in ids)
        assert connection.exec_driver_sql("SELECT id FROM tokens WHERE token = 'tok_legacy_insert'").scalar() == new_id
        assert mysql_ddl.column_default(connection, "tokens", "id") is None
        assert drift(connection) == []
