"""SQLite: ``setup`` on an empty file while the service starts beside it (issue 21, item 8).

The service ignores our lock file: it runs its ``CREATE TABLE IF NOT EXISTS`` start-up
whenever it starts.  If it does so between our "the file is empty" and the creation of our
first revision, the result must still be a database at head with every row, never "table
projects already exists" (exit 4).  The executor's ``before_first_revision_hook`` opens that
gap deterministically; the service is the emulator (``tests/service_emulator.py``), run in a
thread as the real one runs beside us.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import executor
from llm_proxy_db.migration.version_table import current_revision
from tests.safety_helpers import HEAD
from tests.service_emulator import exercise_service, start_service


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
