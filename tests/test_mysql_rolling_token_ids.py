"""MySQL/MariaDB during a rolling deploy: what becomes of the tokens the previous release (from
before the token-id change) inserts without ``id`` while 0005 runs and after it (issue 21 F5;
docs/operations.md, "Tokens written without `id` by an older release"), and how ``migrate
status`` reports the ``''`` one a server without strict mode writes.  Real MariaDB.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import mysql_ddl
from llm_proxy_db.dialects.mysql import EMPTY_TOKEN_IDS
from tests.seed import seed
from tests.test_cli_safety import cli
from tests.test_fast_commands import _options

pytestmark = pytest.mark.mysql


@pytest.fixture
def mysql(mysql_url: sa.engine.URL) -> Settings:
    settings = Settings(driver="mysql", database_url=mysql_url)
    commands.upgrade(settings, "0004", no_backup=True)
    with connect(settings) as connection:
        seed(connection, projects=2, tokens=40, events=0)
    return settings


def _old_release_inserts_a_token(settings: Settings, sql_mode: str | None = None) -> str:
    """The previous release's INSERT (its columns: no ``id``), in its own session."""
    token = f"old-{uuid.uuid4().hex}"
    with connect(settings) as conn:
        if sql_mode is not None:
            conn.exec_driver_sql(f"SET SESSION sql_mode = '{sql_mode}'")
        project = conn.exec_driver_sql("SELECT id FROM projects LIMIT 1").scalar()
        conn.exec_driver_sql(
            "INSERT INTO tokens (token, project_id, is_active, request_count, created_at) "
            "VALUES (%s, %s, 1, 0, NOW(6))",
            (token, project),
        )
        conn.commit()
    return token


def _id_of(settings: Settings, token: str) -> object:
    with connect(settings) as conn:
        return conn.exec_driver_sql("SELECT id FROM tokens WHERE token = %s", (token,)).scalar()


def test_tokens_inserted_while_0005_runs_get_an_id(mysql: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """While 0005 fills the ids the column has the default ``UUID()``: the old release's rows get one."""
    inserted: list[str] = []
    monkeypatch.setattr(mysql_ddl, "batch_hook", lambda rows: inserted.append(_old_release_inserts_a_token(mysql)))
    commands.upgrade(mysql, "0005", no_backup=True)
    assert inserted
    for token in inserted:
        value = _id_of(mysql, token)
        assert isinstance(value, str) and len(value) == 36, (token, value)
    assert commands.status(mysql).tokens_without_id == 0


def test_after_0005_the_old_release_cannot_insert_a_token_without_id(mysql: Settings) -> None:
    """After 0005 ``id`` is NOT NULL without a default: in strict mode (MariaDB's and MySQL's
    default) the old release's token INSERT fails (1364) and nothing is written; without strict
    mode the server writes ``''`` with a warning, once (a second one collides on the key)."""
    commands.upgrade(mysql, "0005", no_backup=True)
    with pytest.raises(sa.exc.OperationalError, match="1364"):
        _old_release_inserts_a_token(mysql)
    with connect(mysql) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM tokens WHERE token LIKE %s", ("old-%",)).scalar() == 0

    first = _old_release_inserts_a_token(mysql, sql_mode="")
    assert _id_of(mysql, first) == ""
    with pytest.raises(sa.exc.IntegrityError, match="1062"):
        _old_release_inserts_a_token(mysql, sql_mode="")


def test_status_reports_a_token_with_the_empty_id_and_the_fix(mysql: Settings) -> None:
    """The ``''`` token is reported by ``migrate status`` (a warning line with the count and the
    fix of docs/operations.md; ``tokens_with_empty_id`` in ``--json``), found by a primary-key
    lookup; the fast path at head steps aside for a status (not for a start) while it exists."""
    assert commands.status(mysql).tokens_with_empty_id == 0  # at 0004: no id column, nothing looked up
    commands.upgrade(mysql, no_backup=True)
    status_argv = _options(mysql) + ["migrate", "status"]
    assert fast_path.output_at_head(status_argv) is not None
    _old_release_inserts_a_token(mysql, sql_mode="")

    assert fast_path.output_at_head(status_argv) is None  # a status at head cannot miss it
    assert fast_path.output_at_head(_options(mysql) + ["setup"]) is not None  # a start pays no extra read
    shown = cli(mysql, "migrate", "status")
    assert shown.exit_code == 0, shown.output
    assert "warning:  1 token(s) have the id ''" in shown.output
    assert "UPDATE tokens SET id = UUID() WHERE id = ''" in shown.output and "docs/operations.md" in shown.output
    data = json.loads(cli(mysql, "migrate", "status", "--json").stdout)
    assert data["tokens_with_empty_id"] == 1 and data["tokens_without_id"] == 0
    with connect(mysql) as conn:
        (plan,) = conn.exec_driver_sql(f"EXPLAIN {EMPTY_TOKEN_IDS}").mappings().all()
        assert plan["type"] == "const" or "const tables" in str(plan["Extra"]), plan  # one key lookup, no scan

        conn.exec_driver_sql("UPDATE tokens SET id = UUID() WHERE id = ''")  # the documented fix
        conn.commit()
    assert commands.status(mysql).tokens_with_empty_id == 0
    assert fast_path.output_at_head(status_argv) is not None
