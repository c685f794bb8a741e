"""SQLite: ``setup`` on an empty file while the service starts beside it (issue 21, item 8).

The service ignores our lock file: it runs its ``CREATE TABLE IF NOT EXISTS`` start-up
whenever it starts.  If it does so between our "the file is empty" and the creation of our
first revision, the result must still be a database at head with every row, never "table
projects already exists" (exit 4).  The executor's ``before_first_revision_hook`` opens that
gap deterministically; the service is the emulator (``tests/service_emulator.py``), run in a
thread as the real one runs beside us.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator

import pytest

from llm_proxy_db import commands
from llm_proxy_db.adoption import adopt as adopt_module
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import executor
from llm_proxy_db.migration.version_table import current_revision
from tests.safety_helpers import HEAD
from tests.service_emulator import FIXTURES, _statements, exercise_service, start_service


@pytest.fixture
def gap() -> Iterator[list]:
    """The hook's calls; the hook is removed after the test."""
    calls: list = []
    yield calls
    executor.before_first_revision_hook = None


def _service_in_a_thread(settings: Settings, wait: bool) -> threading.Thread:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            start_service(settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    if wait:
        thread.join(10)
    return thread


@pytest.mark.parametrize("wait", [True, False], ids=["service-done-in-the-gap", "service-starting-in-the-gap"])
def test_setup_survives_the_service_creating_its_schema_in_the_gap(
    sqlite_settings: Settings, gap: list, wait: bool
) -> None:
    assert sqlite_settings.database_path is not None
    sqlite_settings.database_path.parent.mkdir(parents=True)
    sqlite_settings.database_path.touch()  # the empty file the service's first open leaves
    threads: list[threading.Thread] = []

    def hook() -> None:
        if not threads:  # once: the first revision from base only
            threads.append(_service_in_a_thread(sqlite_settings, wait))

    executor.before_first_revision_hook = hook

    result = commands.setup(sqlite_settings)

    assert threads, "the gap was never reached"
    threads[0].join(10)
    assert not threads[0].errors, threads[0].errors  # type: ignore[attr-defined]
    assert result.after == HEAD
    with connect(sqlite_settings, create=False) as connection:
        assert current_revision(connection) == HEAD
    assert start_service(sqlite_settings).changed_nothing
    assert exercise_service(sqlite_settings) > 0


def test_migrate_up_on_a_missing_file_adopts_what_the_service_created_in_the_gap(
    sqlite_settings: Settings, gap: list
) -> None:
    """``migrate up`` on a path that does not exist yet: the same gap, the same outcome."""
    def hook() -> None:
        if not gap:
            gap.append(start_service(sqlite_settings))

    executor.before_first_revision_hook = hook
    result = commands.upgrade(sqlite_settings)
    assert gap and result.after == HEAD and result.adopted is not None
    assert start_service(sqlite_settings).changed_nothing


def test_setup_waits_for_a_service_start_up_it_finds_half_way(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service is half-way through its start-up when ``setup`` first looks (``projects``
    created, ``tokens`` not yet: its statements commit one by one) and finishes just after.
    Found by the hostile review of issue 21: exit 6 "matches no known state; nearest is 0001"
    with a hint to ``--force-stamp 0001`` (1 of 30 runs of the real CLI beside the service);
    the shape is looked at again once it settles and adopted."""
    path = sqlite_settings.database_path
    assert path is not None
    path.parent.mkdir(parents=True)
    first = _statements((FIXTURES / "head_sqlite.sql").read_text())[0]
    assert first.startswith("CREATE TABLE projects")
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA journal_mode=WAL")  # the service's connection, as it opens one
        raw.execute(first)  # the service's first statement, committed alone
        raw.commit()
    looked: list = []
    real_plan = adopt_module.plan

    def plan_then_the_service_finishes(connection, *args, **kwargs):  # type: ignore[no-untyped-def]
        found = real_plan(connection, *args, **kwargs)
        if not looked:
            looked.append(found)
            connection.rollback()  # as the caller does next: our read ends
            start_service(sqlite_settings)  # the rest of its start-up, right after our look
        return found

    monkeypatch.setattr(adopt_module, "plan", plan_then_the_service_finishes)

    result = commands.setup(sqlite_settings)

    assert looked and looked[0].refusal is not None  # the first look did see a half-made schema
    assert result.after == HEAD
    assert start_service(sqlite_settings).changed_nothing
    assert exercise_service(sqlite_settings) > 0
