"""Looking at a MySQL database while the service's goose run is half-way (its migration lock
held, goose file 4 part-applied: MySQL commits each statement): status, adopt --dry-run and
setup wait for the service's lock (bounded by the lock timeout) before reading the shape, and
a database whose goose run may still be going on is never answered with a force."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import SchemaMismatchError
from tests import service_emulator

HOLD_S = 5.0


def _service_paused_in_goose_4(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> threading.Thread:
    """The service's start-up in a thread, held HOLD_S after goose file 4's first statement."""
    halfway = threading.Event()
    apply = service_emulator._apply_mysql_goose_file

    def paused(connection: Any, version: int, statements: Sequence[str]) -> None:
        if version == 4:
            connection.execute(statements[0])
            halfway.set()
            time.sleep(HOLD_S)
            statements = statements[1:]
        apply(connection, version, statements)

    monkeypatch.setattr(service_emulator, "_apply_mysql_goose_file", paused)
    thread = threading.Thread(target=service_emulator.start_service, args=(settings,))
    thread.start()
    assert halfway.wait(30), "the service never reached goose file 4"
    return thread


@pytest.mark.mysql
def test_status_waits_for_the_services_goose_run(mysql_url: sa.engine.URL, monkeypatch) -> None:
    settings = Settings(driver="mysql", database_url=mysql_url)
    thread = _service_paused_in_goose_4(settings, monkeypatch)
    try:
        status = commands.status(settings)
    finally:
        thread.join(30)
    assert status.detected_state == commands.status(settings).detected_state, status
    assert status.detected_state not in (None, "unknown") and "undetermined" not in status.detected_state


@pytest.mark.mysql
def test_setup_adopts_after_the_services_goose_run(mysql_url: sa.engine.URL, monkeypatch) -> None:
    settings = Settings(driver="mysql", database_url=mysql_url)
    thread = _service_paused_in_goose_4(settings, monkeypatch)
    try:
        result = commands.setup(settings, no_backup=True, lock_timeout=30)
    finally:
        thread.join(30)
    assert result.after == "0007"


@pytest.mark.mysql
def test_a_goose_database_matching_no_state_is_not_answered_with_a_force(mysql_url: sa.engine.URL) -> None:
    """goose file 4 stopped part-way (the service killed in it): the refusal names the
    service's goose run and never suggests --force-stamp."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    files = service_emulator._mysql_goose_files()
    from tests.service_emulator import _connection, _mysql_goose_version

    with _connection(settings) as connection:
        _mysql_goose_version(connection)
        for version in (1, 2, 3):
            service_emulator._apply_mysql_goose_file(connection, version, files[version])
        connection.execute(files[4][0])
    with pytest.raises(SchemaMismatchError) as refused:
        commands.setup(settings, no_backup=True, lock_timeout=5)
    hint = refused.value.hint or ""
    assert "force" not in hint.lower() and "goose" in hint


HOLD_SERVICE_LOCK = {
    "mysql": ("SELECT GET_LOCK('llm-proxy-migrations', 60)", "SELECT RELEASE_LOCK('llm-proxy-migrations')"),
    "postgresql": ("SELECT pg_try_advisory_lock(3141592653)", "SELECT pg_advisory_unlock(3141592653)"),
}


SERVERS = [pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.mark.parametrize("dialect", SERVERS)
def test_a_goose_run_that_never_ends_is_waited_for_within_the_lock_timeout(
    settings: Settings, dialect: str, monkeypatch
) -> None:
    """The service's lock held for longer than the lock timeout: status says it could not read
    the shape (it never guesses from a half-way schema)."""
    monkeypatch.setenv("LLM_PROXY_LOCK_TIMEOUT", "0.5")
    take, release = HOLD_SERVICE_LOCK[dialect]
    holder = sa.create_engine(settings.sqlalchemy_url(), poolclass=sa.pool.NullPool)
    with holder.connect() as other:
        other.exec_driver_sql("CREATE TABLE projects (id VARCHAR(10) PRIMARY KEY)")
        other.commit()
        assert other.exec_driver_sql(take).scalar() in (1, True)
        started = time.monotonic()
        status = commands.status(settings)
        assert time.monotonic() - started >= 0.5
        other.exec_driver_sql(release)
    holder.dispose()
    assert status.detected_state is not None and status.detected_state.startswith("undetermined")
    assert "service's migration lock is still held" in status.detected_state
