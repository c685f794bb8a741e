"""Every offline script (``migrate up --sql`` / ``migrate down --sql``), on every dialect and to
every target, run through the real client (``sqlite3``, ``psql``, ``mariadb``) on a fresh
database, leaves what the online run to the same target leaves: the same schema (the
project's fingerprint), the same ``alembic_version`` and the same goose rows; a SQLite script
from base creates the file in WAL mode, as the service runs it and the tool creates it.

The online states are walked once per dialect (base -> head -> base, one revision at a time,
on a database of their own) and kept; each case runs its script on its own new database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.sqlite.journal import journal_mode
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.version_table import current_revision
from llm_proxy_db.schema.fingerprint import Fingerprint, fingerprint
from llm_proxy_db.service import goose

IDS = revisions.ids()
CASES = [("up", target) for target in IDS] + [("down", target) for target in ["base", *IDS[:-1]]]


@dataclass(frozen=True)
class Observed:
    """What a run leaves that a script must leave too."""

    schema: Fingerprint
    revision: str | None
    goose_rows: list[tuple[int, bool]] | None  # None: no goose table


def observe(settings: Settings) -> Observed:
    """The schema, revision and goose rows of the database of ``settings``."""
    with connect(settings, create=False) as connection:
        rows = None
        if goose.has_goose_table(connection):
            query = f"SELECT version_id, is_applied FROM {goose.GOOSE_TABLE} ORDER BY id"
            rows = [(int(v), bool(a)) for v, a in connection.exec_driver_sql(query)]
        return Observed(fingerprint(connection), current_revision(connection), rows)


_online: dict[str, dict[tuple[str, str], Observed]] = {}


def online_states(dialect: str, settings: Settings) -> dict[tuple[str, str], Observed]:
    """Every (direction, target) state of the online runs on ``dialect``, walked once on ``settings``."""
    if dialect not in _online:
        states = {}
        for target in IDS:
            commands.upgrade(settings, target, no_backup=True)
            states[("up", target)] = observe(settings)
        for target in reversed(["base", *IDS[:-1]]):
            commands.downgrade(settings, target, no_backup=True, allow_data_loss=True)
            states[("down", target)] = observe(settings)
        _online[dialect] = states
    return _online[dialect]


# A line the MySQL scripts leave for MySQL 8 operators to run (MariaDB has no such constraint).
MYSQL8_ONLY = "-- MySQL 8 only: "


def run_client(settings: Settings, script: str) -> None:
    """Feed ``script`` to the dialect's own command-line client, as an operator would (on
    MySQL 8, with the lines marked for it)."""
    if settings.is_mysql and not _is_mariadb(settings):
        script = script.replace(MYSQL8_ONLY, "")
    command, env = _client(settings)
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed (.ci/run installs it)")
    done = subprocess.run(command, input=script, text=True, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, f"{command[0]} failed: {done.stderr.strip()[-2000:]}"


def _is_mariadb(settings: Settings) -> bool:
    with connect(settings, create=False) as connection:
        return "mariadb" in str(connection.exec_driver_sql("SELECT VERSION()").scalar()).lower()


def _client(settings: Settings) -> tuple[list[str], dict[str, Any]]:
    url = settings.sqlalchemy_url()
    env = dict(os.environ)
    if settings.is_sqlite:
        return ["sqlite3", str(settings.database_path)], env
    if settings.is_mysql:
        from llm_proxy_db.dialects.mysql.client import _client_connection_args

        if url.password:
            env["MYSQL_PWD"] = str(url.password)
        client = "mariadb" if shutil.which("mariadb") else "mysql"
        return [client, *_client_connection_args(url), str(url.database)], env
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", plain], env


@pytest.mark.parametrize(("direction", "target"), CASES, ids=[f"{d}-{t}" for d, t in CASES])
def test_the_offline_script_leaves_what_the_online_run_leaves(
    dialect: str, make_settings, direction: str, target: str
) -> None:
    fresh = make_settings()
    if fresh.is_sqlite:
        fresh.database_path.parent.mkdir(parents=True, exist_ok=True)
    if direction == "up":
        run_client(fresh, commands.upgrade_sql(fresh, target))
    else:  # at head by the up script (the case up-head checks it), then down
        run_client(fresh, commands.upgrade_sql(fresh, "head"))
        run_client(fresh, commands.downgrade_sql(fresh, target))
    got = observe(fresh)
    if fresh.is_sqlite:  # created by the script from base: in WAL mode, as the service runs it
        assert journal_mode(fresh.database_path) == "wal"
    wanted = online_states(dialect, make_settings())[(direction, target)]
    assert got.revision == wanted.revision
    assert got.goose_rows == wanted.goose_rows
    assert got.schema == wanted.schema, _difference(wanted.schema, got.schema)


def _difference(wanted: Fingerprint, got: Fingerprint) -> str:
    from llm_proxy_db.schema.fingerprint_diff import diff

    return "; ".join(diff(got, wanted))


def test_the_mariadb_down_script_drops_checks_as_mariadb_spells_it(mysql_url: sa.engine.URL) -> None:
    """The case of issue 21 item 3: ``DROP CHECK`` (MySQL 8 only) is never written."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    assert "DROP CHECK" not in commands.downgrade_sql(settings, "base")
