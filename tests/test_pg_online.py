"""Revision 0005 on PostgreSQL runs online: no rewrite, resumable from every boundary.

Each test takes a real PostgreSQL database at revision 0004 with rows, runs 0005 (stopping
it on purpose where a test says so) and checks the end state against the service's goose
version 4 built from ``tests/fixtures/head_postgresql.sql``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import MigrationError
from llm_proxy_db.migration import pg_online
from llm_proxy_db.migration.executor import ProgressEvent
from tests import legacy
from tests.schema_description import describe
from tests.seed import seed

pytestmark = pytest.mark.postgresql

TOKENS = 250
BOUNDARIES = [
    "tokens.id added",
    "backfill tokens.id",
    "tokens.id filled",
    "NOT NULL check added",
    "NOT NULL check validated",
    "tokens.id NOT NULL",
    "NOT NULL check dropped",
    "index tokens_id_key_new",
    "index tokens_token_unique_new",
    "index idx_tokens_token",
    "keys swapped",
]


class Stop(Exception):
    """Raised at a boundary to stop a run there, as a kill would."""


@pytest.fixture
def at_0004(postgres_url: URL, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A database at 0004 holding tokens; backfill batches of one page (several per run)."""
    monkeypatch.setattr(pg_online, "BACKFILL_MAX_PAGES", 1)
    settings = Settings(driver="postgres", database_url=postgres_url)
    commands.upgrade(settings, "0004")
    with connect(settings) as connection:
        seed(connection, projects=5, tokens=TOKENS, events=10)
    return settings


def _head_shape(factory: Callable[[], URL]) -> dict:
    goose_4 = next(s for s in legacy.postgresql_shapes() if s.name == "goose-4")
    with connect(Settings(driver="postgres", database_url=factory())) as connection:
        legacy.build(connection, goose_4)
        return describe(connection)["tokens"]


def _tokens(settings: Settings) -> tuple[int, int, dict]:
    with connect(settings) as connection:
        rows, ids = connection.exec_driver_sql(
            "SELECT count(*), count(DISTINCT id) FROM tokens"
        ).one()
        return rows, ids, describe(connection)["tokens"]


def _stop_at(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(boundary: str) -> None:
        if boundary == name:
            raise Stop(boundary)

    monkeypatch.setattr(pg_online, "boundary_hook", hook)


def test_online_0005_reaches_goose_4_without_rewriting_tokens(
    at_0004: Settings, postgres_database_factory: Callable[[], URL]
) -> None:
    """Every token kept with its own id; same table file (no rewrite); progress reported."""
    with connect(at_0004) as connection:
        before = connection.exec_driver_sql("SELECT pg_relation_filenode('tokens')").scalar()
    events: list[ProgressEvent] = []
    result = commands.upgrade(at_0004, "0005", progress=events.append)
    assert result.applied == ["0005"] and result.steps[0].lock_retries == 0
    assert _tokens(at_0004) == (TOKENS, TOKENS, _head_shape(postgres_database_factory))
    with connect(at_0004) as connection:
        assert connection.exec_driver_sql("SELECT pg_relation_filenode('tokens')").scalar() == before
    steps = [e.detail for e in events if e.kind == "step"]
    assert steps == [name for name in BOUNDARIES if not name.startswith("backfill")]
    backfill = [e for e in events if e.kind == "backfill"]
    assert backfill[-1].done == backfill[-1].total == TOKENS and backfill[-1].phase == "fill tokens.id"
    assert backfill[-1].rate > 0


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_online_0005_resumes_after_a_stop_at_every_boundary(
    at_0004: Settings,
    boundary: str,
    monkeypatch: pytest.MonkeyPatch,
    postgres_database_factory: Callable[[], URL],
) -> None:
    """Stopped between any two of its transactions, 0005 is finished by the next run."""
    _stop_at(boundary, monkeypatch)
    with pytest.raises(MigrationError, match="0005 failed"):
        commands.upgrade(at_0004, "0005")
    assert commands.status(at_0004).current_revision == "0004"
    with connect(at_0004) as connection:  # the previous release keeps inserting tokens
        connection.exec_driver_sql(
            "INSERT INTO tokens (token, project_id) SELECT 'late', id FROM projects LIMIT 1"
        )
        connection.commit()
    monkeypatch.setattr(pg_online, "boundary_hook", None)
    assert commands.upgrade(at_0004).after == "0007"
    rows, ids, shape = _tokens(at_0004)
    assert rows == ids == TOKENS + 1
    assert shape == _head_shape(postgres_database_factory)


def test_online_0005_rebuilds_an_invalid_index(
    at_0004: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INVALID index left by a failed concurrent build is dropped and built again."""
    _stop_at("index tokens_token_unique_new", monkeypatch)
    with pytest.raises(MigrationError):
        commands.upgrade(at_0004, "0005")
    with connect(at_0004) as connection:  # what a cancelled CREATE INDEX CONCURRENTLY leaves
        connection.exec_driver_sql(
            "UPDATE pg_index SET indisvalid = false "
            "WHERE indexrelid IN ('tokens_id_key_new'::regclass, 'tokens_token_unique_new'::regclass)"
        )
        connection.commit()
    monkeypatch.setattr(pg_online, "boundary_hook", None)
    commands.upgrade(at_0004, "0005")
    with connect(at_0004) as connection:
        invalid = connection.exec_driver_sql("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar()
        names = connection.exec_driver_sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'tokens'::regclass AND contype IN ('p', 'u') "
            "ORDER BY conname"
        ).scalars().all()
    assert invalid == 0 and names == ["tokens_pkey", "tokens_token_unique"]


def test_offline_sql_renders_the_online_steps() -> None:
    """``--sql`` prints the same steps: batches that commit, concurrent builds, the swap."""
    settings = Settings(driver="postgres", database_url="postgresql://u@localhost/db")
    sql = commands.upgrade_sql(settings, "0005", start="0004")
    for expected in (
        "ADD COLUMN IF NOT EXISTS id UUID, ALTER COLUMN id SET DEFAULT gen_random_uuid()",
        "COMMIT;",
        "DO $$",
        "CHECK (id IS NOT NULL) NOT VALID",
        "VALIDATE CONSTRAINT tokens_id_not_null",
        "CREATE UNIQUE INDEX CONCURRENTLY tokens_id_key_new ON tokens (id)",
        "ADD CONSTRAINT tokens_pkey PRIMARY KEY USING INDEX tokens_id_key_new",
        "UNIQUE USING INDEX tokens_token_unique_new",
        "SET lock_timeout = '1s'",
    ):
        assert expected in sql, expected
    assert sql.index("USING INDEX tokens_id_key_new") < sql.index("UPDATE alembic_version")


def test_a_busy_tokens_table_is_retried_and_reported(
    at_0004: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction holding tokens makes 0005 time out, retry and say so; then give up clearly."""
    monkeypatch.setenv("LLM_PROXY_TABLE_LOCK_TIMEOUT", "100ms")
    monkeypatch.setenv("LLM_PROXY_LOCK_RETRIES", "2")
    events: list[ProgressEvent] = []
    with connect(at_0004) as holder:
        holder.exec_driver_sql("LOCK TABLE tokens IN ACCESS SHARE MODE")
        with pytest.raises(MigrationError, match="lock timeout"):
            commands.upgrade(at_0004, "0005", progress=events.append)
        holder.rollback()
    retries = [e for e in events if e.kind == "lock_retry"]
    assert retries and all(e.revision == "0005" for e in retries)
    assert "attempt 1 of 2" in retries[0].detail
    assert commands.upgrade(at_0004, "0005").after == "0005"


def test_lock_conflicts_are_recognised() -> None:
    """Lock timeouts and deadlocks are retried; other errors are not."""
    timeout = sa.exc.OperationalError("x", {}, type("E", (Exception,), {"sqlstate": "55P03"})())
    other = sa.exc.OperationalError("x", {}, Exception("boom"))
    assert pg_online.is_lock_conflict(timeout) and not pg_online.is_lock_conflict(other)
    assert 0.1 < pg_online.backoff(1) < 0.3 and pg_online.backoff(20) <= 6.25


def test_offline_sql_run_by_psql_finishes_the_job(
    at_0004: Settings, postgres_url: URL, postgres_database_factory: Callable[[], URL]
) -> None:
    """A DBA running the ``--sql`` output with psql gets the same head, every token with an id."""
    sql = commands.upgrade_sql(at_0004, "head", start="0004")
    url = postgres_url.render_as_string(hide_password=False).replace("+psycopg", "")
    done = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=sql, text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert commands.status(at_0004).current_revision == "0007"
    assert _tokens(at_0004) == (TOKENS, TOKENS, _head_shape(postgres_database_factory))


@pytest.mark.parametrize("stop", [False, True])
def test_rows_moved_behind_the_page_walk_are_filled_by_the_last_pass(
    at_0004: Settings, stop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows left NULL in pages already walked (the service updated them, so they moved) are
    found by the straggler pass; a run stopped during that pass is finished by the next."""
    with connect(at_0004) as connection:
        pages = connection.exec_driver_sql(
            "SELECT pg_relation_size('tokens') / current_setting('block_size')::int"
        ).scalar()
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)
        if name == "backfill tokens.id" and seen.count(name) == pages:  # the walk's last page
            with connect(at_0004) as other:
                other.exec_driver_sql(
                    "UPDATE tokens SET id = NULL WHERE token IN (SELECT token FROM tokens LIMIT 10)"
                )
                other.commit()
        if stop and name == "backfill tokens.id stragglers":
            raise Stop(name)

    monkeypatch.setattr(pg_online, "boundary_hook", hook)
    monkeypatch.setattr(pg_online, "BACKFILL_STRAGGLER_ROWS", 4)
    if stop:
        with pytest.raises(MigrationError, match="0005 failed"):
            commands.upgrade(at_0004, "0005")
        monkeypatch.setattr(pg_online, "boundary_hook", None)
    commands.upgrade(at_0004, "0005")
    assert "backfill tokens.id stragglers" in seen
    rows, ids, _ = _tokens(at_0004)
    assert rows == ids == TOKENS


def test_batch_size_follows_the_time_per_batch() -> None:
    """Pages per batch scale towards the target time, at most x2 / x0.5 a step, within bounds."""
    assert pg_online.next_batch_pages(100, 0.02, target=0.04) == 200
    assert pg_online.next_batch_pages(100, 0.001, target=0.04) == 200
    assert pg_online.next_batch_pages(100, 0.05, target=0.04) == 80
    assert pg_online.next_batch_pages(100, 1.0, target=0.04) == 50
    assert pg_online.next_batch_pages(1, 1.0, target=0.04) == 1
    assert pg_online.next_batch_pages(10**6, 0.0) == pg_online.BACKFILL_MAX_PAGES


def test_exclusive_statements_wait_less_for_their_lock() -> None:
    """ACCESS EXCLUSIVE statements wait at most 100 ms; shorter settings and 0 are kept."""
    assert pg_online.exclusive_lock_timeout("1s") == "100ms"
    assert pg_online.exclusive_lock_timeout("50ms") == "50ms"
    assert pg_online.exclusive_lock_timeout("0") == "0"
    assert pg_online.exclusive_lock_timeout("2min") == "100ms"


def test_pg_durations_in_milliseconds() -> None:
    """The durations PostgreSQL accepts for lock_timeout, in milliseconds; anything else is refused."""
    from llm_proxy_db.config.parsing import pg_duration_ms

    assert [pg_duration_ms(v) for v in ("250", "250ms", "2s", "1min", " 0 ")] == [250, 250, 2000, 60_000, 0]
    with pytest.raises(ValueError):
        pg_duration_ms("soon")
