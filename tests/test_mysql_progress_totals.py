"""The totals MySQL's long row passes report are counted, not InnoDB's estimate (issue 21 F5).

After mass deletes that purge has not removed yet, InnoDB's ``TABLE_ROWS`` (refreshed by the
automatic statistics recalculation, here by ``ANALYZE TABLE``) counts the delete-marked rows:
or, for a table of many pages, none at all: the progress said ``300/3,000 rows (10%)`` when the
pass ended, or a total growing with the rows done.  Real MariaDB, real revisions.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.events import ProgressEvent
from tests.seed import seed

pytestmark = pytest.mark.mysql
KEEP, ROWS = 300, 20_000


@pytest.fixture
def mariadb(mysql_url: sa.engine.URL) -> Settings:
    return Settings(driver="mysql", database_url=mysql_url)


def _mass_delete(settings: Settings, table: str, key: str) -> int:
    """Delete all but :data:`KEEP` rows of ``table`` while another session's read view keeps
    purge from removing them, then let the statistics be recalculated (as InnoDB does by
    itself after 10% of a table changed); returns the rows left."""
    with connect(settings) as holder, connect(settings) as conn:
        holder.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        keep = conn.exec_driver_sql(f"SELECT {key} FROM {table} ORDER BY {key} LIMIT 1 OFFSET {KEEP - 1}").scalar()
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE {key} > %s", (keep,))
        conn.commit()
        conn.exec_driver_sql(f"ANALYZE TABLE {table}").fetchall()
        estimate = conn.exec_driver_sql(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        ).scalar()
        left = int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() or 0)
        holder.rollback()
    assert left == KEEP and estimate != left, (estimate, left)  # the premise: the estimate is off
    return left


@pytest.mark.parametrize(
    ("start", "target", "table", "key", "phase"),
    [
        ("0006", "0007", "audit_events", "id", "copy audit_events"),
        ("0004", "0005", "tokens", "token", "fill tokens.id"),
    ],
    ids=["0007-shadow-copy", "0005-fill"],
)
def test_the_total_is_the_rows_there_not_the_estimate(
    mariadb: Settings, start: str, target: str, table: str, key: str, phase: str
) -> None:
    commands.upgrade(mariadb, start, no_backup=True)
    with connect(mariadb) as connection:
        seed(connection, projects=10, tokens=ROWS if table == "tokens" else 50,
             events=ROWS if table == "audit_events" else 0)
    left = _mass_delete(mariadb, table, key)
    events: list[ProgressEvent] = []
    commands.upgrade(mariadb, target, no_backup=True, progress=events.append)
    passes = [e for e in events if e.kind == "backfill" and e.phase.startswith(phase)]
    assert passes, [e.as_dict() for e in events]
    assert passes[0].total == left and passes[-1].done == passes[-1].total == left, [e.as_dict() for e in passes]
