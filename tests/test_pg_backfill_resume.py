"""PostgreSQL 0005: a rerun after a kill mid-backfill never fails on work already done (issue 21, item 13).

At 1M tokens the first rerun after a kill failed with "canceling statement due to statement
timeout": the page walk restarted at page 0, its batches grew while they crossed pages already
filled (nothing to write, so fast), and the first batch over unfilled pages was then far too
big for the 15 s quick-statement timeout.  The class: no statement under the quick timeout may
cost more with the size of the table (or of the work already done).  Shown at small size with
a deterministic kill (the boundary hook) and a quick timeout shrunk in proportion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError
from llm_proxy_db.migration import pg_online
from tests.seed import seed

pytestmark = pytest.mark.postgresql

TOKENS = 40_000
_RANGE = re.compile(r"ctid >= '\((\d+),0\)'::tid AND ctid < '\((\d+),0\)'::tid")


class Killed(Exception):
    """Raised at a boundary, as a kill would stop the run there."""


@pytest.fixture
def at_0004(postgres_url) -> Settings:  # type: ignore[no-untyped-def]
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings, "0004")
    with connect(settings) as connection:
        seed(connection, projects=5, tokens=TOKENS, events=10)
    return settings


@pytest.fixture
def updated_ranges() -> Iterator[list[tuple[int, int]]]:
    """The page ranges the backfill's UPDATEs cover, in order (every engine of the test)."""
    ranges: list[tuple[int, int]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        match = _RANGE.search(statement)
        if match and statement.lstrip().upper().startswith("UPDATE"):
            ranges.append((int(match.group(1)), int(match.group(2))))

    event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    yield ranges
    event.remove(sa.engine.Engine, "before_cursor_execute", seen)


def _pages(settings: Settings) -> int:
    with connect(settings) as connection:
        return int(connection.exec_driver_sql(
            "SELECT pg_relation_size('tokens') / current_setting('block_size')::int").scalar())


def test_a_rerun_resumes_the_walk_and_no_quick_statement_grows_with_the_table(
    at_0004: Settings, updated_ranges: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = _pages(at_0004)
    batches: list[str] = []

    def kill_half_way(name: str) -> None:
        if name == "backfill tokens.id":
            batches.append(name)
            if len(batches) == pages // 2:  # small batches: the walk is half-way
                raise Killed(name)

    monkeypatch.setattr(pg_online, "BACKFILL_MAX_PAGES", 1)
    monkeypatch.setattr(pg_online, "boundary_hook", kill_half_way)
    with pytest.raises(MigrationError, match="0005"):
        commands.upgrade(at_0004, "0005")
    reached = max(end for _first, end in updated_ranges)
    updated_ranges.clear()

    # The rerun, with batches of about 5 ms and a quick timeout of 20x that: a batch sized
    # by pages that cost nothing to walk, or a scan of the table, would not fit.
    monkeypatch.setattr(pg_online, "boundary_hook", None)
    monkeypatch.setattr(pg_online, "BACKFILL_MAX_PAGES", 4096)
    monkeypatch.setattr(pg_online, "BACKFILL_BATCH_SECONDS", 0.005)
    monkeypatch.setattr(pg_online, "QUICK_STATEMENT_TIMEOUT", "100ms")
    assert commands.upgrade(at_0004).after == "0007"

    first_update = updated_ranges[0][0]
    assert first_update >= reached - 1, (reached, updated_ranges[:5])  # resumed, not from page 0
    rewalked = sum(min(end, reached) - first for first, end in updated_ranges if first < reached)
    assert rewalked <= 1, updated_ranges[:5]
    with connect(at_0004) as connection:
        assert connection.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM tokens").one() == (TOKENS, TOKENS)
