"""Adoption on MySQL: the MySQL 8 goose-5 trap is recognised and fixed, MariaDB's goose-5 is head."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.mysql.ddl import check_constraints
from tests import legacy
from tests.seed import is_check_violation, seed

pytestmark = pytest.mark.mysql


def _our_rows(connection: sa.engine.Connection) -> dict[str, int]:
    """Rows of our tables (goose's table gains its retirement rows)."""
    return {name: count for name, count in legacy.row_counts(connection).items() if name != "goose_db_version"}


def _shape(name: str) -> legacy.Legacy:
    return next(shape for shape in legacy.mysql_shapes() if shape.name == name)


def test_the_mysql8_trap_is_adopted_and_left_with_exactly_the_four_value_check(tmp_path, request) -> None:
    """goose-5 with the old audit_events_chk_1: setup stamps 0006, 0007 drops the old CHECK."""
    settings, _ = legacy.prepare(_shape("goose-5-mysql8"), tmp_path, request)
    with connect(settings) as connection:
        counts = _our_rows(connection)
    result = commands.upgrade(settings, no_backup=True)
    assert result.adopted == "goose-5-mysql8" and result.applied == ["0007"]
    with connect(settings) as connection:
        checks = check_constraints(connection, "audit_events")
        assert [check["name"] for check in checks] == ["audit_events_outcome_check"]
        assert _our_rows(connection) == counts
        seed(connection, projects=1, tokens=0, events=2, outcomes=("denied", "error"), prefix="new")
        with pytest.raises(sa.exc.DBAPIError) as refused:
            seed(connection, projects=1, tokens=0, events=1, outcomes=("bogus",), prefix="bad")
    assert is_check_violation(refused.value)


def test_goose_5_on_mariadb_is_the_head_shape(tmp_path, request) -> None:
    """On MariaDB the service's file 5 leaves one CHECK: the database is adopted at head."""
    settings, _ = legacy.prepare(_shape("goose-5"), tmp_path, request)
    with connect(settings) as connection:
        version = str(connection.exec_driver_sql("SELECT VERSION()").scalar())
    if "mariadb" not in version.lower():
        pytest.skip("MySQL 8 keeps audit_events_chk_1 (the trap above); this is MariaDB's behaviour")
    result = commands.upgrade(settings, no_backup=True)
    assert (result.adopted, result.applied) == ("0007", [])
