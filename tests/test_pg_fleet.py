"""A rollout starting at once (issue 19): 20 processes on a database behind head, some running
``setup``, some the library's ``auto_upgrade()``, directly and through the transaction pool with
``LLM_PROXY_DIRECT_URL``.  All exit 0, exactly one migrates, nothing is applied twice.  The
wall time is only logged here; the claim about it lives in ``bench/`` (the pooler race)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import URL

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from tests.pg_topology_helpers import cli_env, leftovers_on_pool, start_cli
from tests.seed import seed
from tests.topology import PooledDatabase, libpq

pytestmark = pytest.mark.postgresql
FLEET = 20
LIBRARY_EVERY = 4  # every 4th process calls auto_upgrade() instead of the CLI
_AUTO_UPGRADE = (
    "from llm_proxy_db.startup import auto_upgrade; print('action:', auto_upgrade().action)"
)


def _start(index: int, env: dict[str, str]) -> subprocess.Popen[str]:
    if index % LIBRARY_EVERY == 0:
        return subprocess.Popen(
            [sys.executable, "-c", _AUTO_UPGRADE], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    return start_cli(["setup"], env)


def _behind_head(direct: URL) -> None:
    settings = Settings(driver="postgres", database_url=direct)
    commands.upgrade(settings, "0004")
    with connect(settings) as connection:
        seed(connection, tokens=2000, events=2000)
        connection.commit()


def _roll_out(env: dict[str, str]) -> tuple[list[tuple[int, str]], float]:
    started = time.monotonic()
    processes = [_start(index, env) for index in range(FLEET)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append((process.returncode, out + err))
    return results, time.monotonic() - started


def _upgrades(direct: URL) -> list[str]:
    with psycopg.connect(libpq(direct), autocommit=True) as connection:
        return [row[0] for row in connection.execute(
            "SELECT revision FROM llm_proxy_run_log WHERE action = 'upgrade' ORDER BY id"
        )]


def _check(results: list[tuple[int, str]], direct: URL, wall: float, how: str) -> None:
    assert [code for code, _ in results] == [0] * FLEET, [r for r in results if r[0]]
    # The preparation applied 0001-0004; the fleet: one migrator, each revision once.
    assert _upgrades(direct) == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    migrated = [out for _, out in results if "0004 -> 0007" in out or "action: upgraded" in out]
    assert len(migrated) == 1, results
    print(f"\nfleet of {FLEET} ({how}): all exit 0, one migration, wall {wall:.2f}s")


def test_a_fleet_of_20_directly(postgres_url: URL) -> None:
    _behind_head(postgres_url)
    env = cli_env(postgres_url)
    results, wall = _roll_out(env)
    _check(results, postgres_url, wall, "direct")


def test_a_fleet_of_20_through_the_transaction_pool_with_a_direct_url(
    pooled_database: PooledDatabase, postgres_database_factory: Callable[[], URL]
) -> None:
    _behind_head(pooled_database.direct)
    env = cli_env(pooled_database.transaction, pooled_database.direct)
    results, wall = _roll_out(env)
    _check(results, pooled_database.direct, wall, "PgBouncer transaction pool + LLM_PROXY_DIRECT_URL")
    assert leftovers_on_pool(pooled_database.transaction, pooled_database.direct) == []
