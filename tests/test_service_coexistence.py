"""The service starts on every database this tool hands over, and serves from it.

After every operation of the CLI (setup, adoption, migrate down --to each revision and back
up, db backup + restore, rehearse), the emulated current release (tests/service_emulator.py)
starts without changing anything and runs every statement of reference section 5.  On
PostgreSQL and MySQL ``goose_db_version`` records exactly the goose versions of the revision,
and the service's migration lock (advisory lock / ``GET_LOCK``) keeps a starting service and a
running migration apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.adoption.known_states import revision_fingerprints
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.postgresql import SERVICE_LOCK_KEY
from llm_proxy_db.errors import LockTimeoutError
from llm_proxy_db.migration import revisions
from llm_proxy_db.safety.locking import SERVICE_WAITING, SERVICE_WAITING_SERVER_WIDE
from llm_proxy_db.schema.fingerprint import fingerprint
from llm_proxy_db.schema.fingerprint_diff import diff
from llm_proxy_db.service import goose
from tests import legacy, service_emulator
from tests.service_emulator import ServiceStartError, exercise_service, schema_snapshot, start_service

runner = CliRunner()
HEAD = revisions.head_revision()


def cli(settings: Settings, *args: str) -> str:
    """Run the CLI against ``settings``; fails the test unless it exits 0."""
    if settings.is_sqlite:
        options = ["--database-path", str(settings.database_path)]
    else:
        url = settings.sqlalchemy_url().render_as_string(False)
        options = ["--db-driver", settings.driver, "--database-url", url]
    result = runner.invoke(app, [*options, *args], env={"LLM_PROXY_DEBUG": ""})
    assert result.exit_code == 0, result.output
    return result.output


def serves(settings: Settings) -> None:
    """The service starts without changing anything, then every statement works."""
    started = start_service(settings)
    assert started.changed_nothing, (started.applied, set(started.schema_after) ^ set(started.schema_before))
    assert exercise_service(settings) > 40


def goose_rows(settings: Settings) -> list[int] | None:
    """The applied goose versions above the seed row, in row order (None: no goose table)."""
    with connect(settings) as connection:
        if not goose.has_goose_table(connection):
            return None
        return goose.recorded_versions(connection)


def forget_new_outcomes(settings: Settings) -> None:
    """Delete the service's ``denied``/``error`` audit events, which refuse a downgrade below 0007."""
    with connect(settings) as connection:
        connection.exec_driver_sql("DELETE FROM audit_events WHERE outcome IN ('denied', 'error')")
        connection.commit()


def expected_goose(settings: Settings, revision: str | None) -> list[int] | None:
    """What goose_db_version must hold at ``revision`` on a database set up by this tool
    (None: no goose table, on SQLite and below the dialect's first goose version)."""
    version = goose.goose_version_at(settings.dialect_name, revision)
    return list(range(1, version + 1)) if version else None


def test_service_starts_on_a_database_set_up_by_this_tool(settings) -> None:
    """``setup`` on an empty database: the service applies nothing and serves."""
    cli(settings, "setup")
    assert goose_rows(settings) == expected_goose(settings, HEAD)
    serves(settings)
    serves(settings)  # and once more, on the rows it left


@pytest.mark.parametrize("shape", legacy.params())
def test_service_starts_after_adoption(shape, tmp_path, request) -> None:
    """Every field shape the suite builds, adopted by ``setup``: the service starts and serves."""
    settings, _ = legacy.prepare(shape, tmp_path, request)
    cli(settings, "setup")
    if not settings.is_sqlite:  # SQLite: a 2025-12 goose table stays as it was (no goose runs)
        assert goose_rows(settings) == expected_goose(settings, HEAD)  # 1-6 PostgreSQL, 1-5 MySQL
    serves(settings)


TARGETS = [*revisions.ids()[:-1], "base"]


@pytest.mark.parametrize("target", TARGETS)
def test_down_to_each_revision_keeps_goose_in_step_and_up_again_serves(settings, target) -> None:
    """``migrate down --to REV``: goose records exactly REV's versions; back ``up``, it serves."""
    cli(settings, "setup")
    exercise_service(settings)  # rows written as the service writes them go down and up too
    forget_new_outcomes(settings)
    # Below 0002 the audit log (and the service's rows with it) goes: allowed explicitly.
    cli(settings, "migrate", "down", "--to", target, "--allow-data-loss", "--no-backup")
    assert goose_rows(settings) == expected_goose(settings, revisions.resolve(target))
    cli(settings, "migrate", "up")
    assert goose_rows(settings) == expected_goose(settings, HEAD)
    serves(settings)


SERVERS = ("postgresql", "mysql")  # the dialects where the service runs goose
MARKS = {"postgresql": pytest.mark.postgresql, "mysql": pytest.mark.mysql}


def server_settings(dialect: str, request: pytest.FixtureRequest) -> Settings:
    """An empty database of a server ``dialect``."""
    if dialect == "mysql":
        return Settings(driver="mysql", database_url=request.getfixturevalue("mysql_url"))
    return Settings(driver="postgres", database_url=request.getfixturevalue("postgres_url"))


@pytest.fixture(params=[pytest.param(d, marks=MARKS[d]) for d in SERVERS])
def server(request: pytest.FixtureRequest) -> Settings:
    """An empty PostgreSQL or MySQL database (the dialects whose service runs goose)."""
    return server_settings(request.param, request)


def latest_goose(dialect: str) -> int:
    """The current release's last goose version on ``dialect`` (6 PostgreSQL, 5 MySQL)."""
    return max(goose.GOOSE_VERSIONS[dialect].values())


GOOSE_REVISIONS = [
    pytest.param(dialect, revision, marks=MARKS[dialect], id=f"{dialect}-{revision}")
    for dialect in SERVERS
    for revision, version in goose.GOOSE_VERSIONS[dialect].items()
    if version > 0
]


@pytest.mark.parametrize(("dialect", "revision"), GOOSE_REVISIONS)
def test_the_service_completes_a_database_left_at_any_revision(dialect, revision, request) -> None:
    """The mapping, checked against goose's own rule: at REV the service applies exactly the
    files above REV's goose version, succeeds, and reaches the head schema."""
    settings = server_settings(dialect, request)
    cli(settings, "migrate", "up", "--to", revision)
    started = start_service(settings)
    version = goose.goose_version_at(dialect, revision)
    assert started.goose_versions == list(range(version + 1, latest_goose(dialect) + 1))
    with connect(settings) as connection:
        assert diff(fingerprint(connection), revision_fingerprints(connection)[HEAD]) == []
    exercise_service(settings)


def test_a_fresh_service_database_equals_ours(server) -> None:
    """The emulator's goose files on an empty database build the schema our revisions build."""
    every = list(range(1, latest_goose(server.dialect_name) + 1))
    assert start_service(server).goose_versions == every
    assert start_service(server).changed_nothing
    cli(server, "setup")  # adopted as the last goose version (PostgreSQL: created with api_key)
    assert goose_rows(server) == every
    serves(server)


# Replayed on our head, the first goose file that is not written to be replayed fails:
# PostgreSQL file 4 (plain ADD COLUMN id), MySQL file 1 (plain CREATE INDEX).
FIRST_FAILING_FILE = {"postgresql": 4, "mysql": 1}


def test_the_service_fails_cleanly_on_a_database_goose_does_not_know(server) -> None:
    """Without goose_db_version the service replays its files and one fails: what this
    tool prevents (the emulator reproduces the field failure)."""
    cli(server, "setup")
    with connect(server) as connection:
        connection.exec_driver_sql("DROP TABLE goose_db_version")
        connection.commit()
    failing = FIRST_FAILING_FILE[server.dialect_name]
    with pytest.raises(ServiceStartError, match=f"goose file {failing} failed"):
        start_service(server)


def test_service_starts_after_backup_and_restore(sqlite_settings, tmp_path) -> None:
    """``db backup`` then ``db restore`` (after a downgrade): the service starts and serves."""
    cli(sqlite_settings, "setup")
    exercise_service(sqlite_settings)
    backup = tmp_path / "saved.db"
    cli(sqlite_settings, "db", "backup", "--out", str(backup))
    forget_new_outcomes(sqlite_settings)
    cli(sqlite_settings, "migrate", "down", "--to", "0004")
    cli(sqlite_settings, "db", "restore", str(backup))
    serves(sqlite_settings)


def test_service_starts_after_a_server_restore(server, tmp_path) -> None:
    """``db backup`` then ``db restore --force`` over a database moved down since: the service
    starts on the restored database without applying anything, and serves."""
    cli(server, "setup")
    exercise_service(server)
    dump = tmp_path / "saved"
    dump.mkdir()
    cli(server, "db", "backup", "--out", str(dump))
    forget_new_outcomes(server)
    cli(server, "migrate", "down", "--to", "0004")
    (saved,) = dump.iterdir()
    cli(server, "db", "restore", str(saved), "--force", "--backup-dir", str(tmp_path / "kept"))
    assert goose_rows(server) == expected_goose(server, HEAD)
    serves(server)


def test_service_starts_after_rehearse(settings) -> None:
    """``migrate rehearse`` only reads the real database; after it and ``up`` the service serves."""
    cli(settings, "migrate", "up", "--to", "0005")
    before = schema_snapshot(settings)
    cli(settings, "migrate", "rehearse")
    assert schema_snapshot(settings) == before
    assert goose_rows(settings) == expected_goose(settings, "0005")
    cli(settings, "migrate", "up")
    serves(settings)


# --- the service's migration lock (PostgreSQL advisory lock, MySQL GET_LOCK) --------------------


def test_a_service_starting_during_a_migration_fails_cleanly(server, monkeypatch) -> None:
    """While this tool migrates it holds the service's lock: a starting replica gives up after
    its 10 tries and changes nothing (MySQL's tries wait 10 s each; 0 s here)."""
    monkeypatch.setattr(service_emulator, "MYSQL_LOCK_WAIT", 0)
    cli(server, "migrate", "up", "--to", "0004")
    seen: list[str] = []

    def during(event) -> None:
        if event.kind == "apply_start" and not seen:
            before = schema_snapshot(server)
            with pytest.raises(ServiceStartError, match="migration lock"):
                start_service(server)
            assert schema_snapshot(server) == before
            seen.append(event.revision)

    commands.upgrade(server, progress=during)
    assert seen == ["0005"]
    serves(server)


@contextmanager
def service_lock_held(settings: Settings) -> Iterator[Callable[[], None]]:
    """A starting service holds its migration lock (on another connection) until released."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        engine = sa.create_engine(settings.sqlalchemy_url(), poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            if settings.dialect_name == "mysql":
                connection.exec_driver_sql(f"SELECT GET_LOCK('{service_emulator.SERVICE_LOCK_NAME}', 5)")
            else:
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({SERVICE_LOCK_KEY})")
            held.set()
            release.wait(10)
        engine.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        yield release.set
    finally:
        release.set()
        holder.join()


def test_a_migration_waits_for_a_starting_service(server) -> None:
    """A service holding its lock (starting) is waited for, and the wait is reported."""
    events: list = []
    with service_lock_held(server) as release:
        with pytest.raises(LockTimeoutError, match="service's migration lock"):
            commands.upgrade(server, lock_timeout=0.3, progress=events.append)
        threading.Timer(0.5, release).start()
        started = time.monotonic()
        result = commands.upgrade(server, lock_timeout=10, progress=events.append)
    assert result.after == HEAD and time.monotonic() - started >= 0.3
    expected = SERVICE_WAITING_SERVER_WIDE if server.dialect_name == "mysql" else SERVICE_WAITING
    assert any(e.kind == "lock_wait" and e.detail == expected for e in events)
    serves(server)
