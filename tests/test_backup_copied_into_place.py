"""A SQLite backup copied into place by hand (``cp x.bak llm-proxy.db``) (issue 21, item 6).

Every backup carries ``llm_proxy_backup_origin``; a database that is such a copy carries it
too.  Every later backup must still work (the table is replaced, never created twice), the
copy's schema must still be recognised (adoption and fingerprints ignore the table), and a
backup that fails says its real cause, never a wrong one.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.sqlite import backup as sqlite_backup
from llm_proxy_db.errors import BackupError
from llm_proxy_db.safety import backup
from tests import legacy
from tests.safety_helpers import HEAD, revision_of, rows, seed


def _origin_rows(path) -> list[tuple]:  # type: ignore[no-untyped-def]
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT database, revision FROM {sqlite_backup.ORIGIN_TABLE}").fetchall()
    finally:
        connection.close()


def test_a_backup_copied_into_place_does_not_block_later_migrations(sqlite_settings: Settings, tmp_path) -> None:
    commands.upgrade(sqlite_settings, "0006", no_backup=True)
    seed(sqlite_settings)
    database = sqlite_settings.database_path
    assert database is not None
    taken = backup.backup(sqlite_settings, tmp_path / "manual.bak")
    shutil.copyfile(taken, database)  # the common manual restore
    before = rows(sqlite_settings)

    result = commands.upgrade(sqlite_settings, backup_dir=tmp_path / "backups")  # takes a backup first

    assert result.after == HEAD and revision_of(sqlite_settings) == HEAD
    assert len(rows(sqlite_settings)["tokens"]) == len(before["tokens"])
    (automatic,) = (tmp_path / "backups").glob("*.bak")
    # The new backup's origin is this database at 0006, one row: the copied-in one was replaced.
    assert _origin_rows(automatic) == [(str(database.resolve()), "0006")]
    again = backup.backup(sqlite_settings, tmp_path / "again.bak")
    assert _origin_rows(again) == [(str(database.resolve()), HEAD)]


def test_adoption_ignores_the_origin_table_of_a_copied_backup(sqlite_settings: Settings, tmp_path) -> None:
    """An unversioned (service-made) database backed up and copied back is still adopted."""
    database = sqlite_settings.database_path
    assert database is not None
    legacy.create(sqlite_settings, next(s for s in legacy.shapes("sqlite") if s.name == "L2-fresh"))
    taken = backup.backup(sqlite_settings, tmp_path / "legacy.bak")
    shutil.copyfile(taken, database)

    plan = commands.adopt(sqlite_settings, dry_run=True)

    assert plan.plan.detection.state_name == "0003", plan.plan.detection.as_dict()  # L2
    assert sqlite_backup.ORIGIN_TABLE not in plan.plan.detection.fingerprint.other_tables
    assert commands.setup(sqlite_settings, backup_dir=tmp_path / "backups").after == HEAD


@pytest.mark.parametrize(
    ("error", "says", "never"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "free disk space", "writable"),
        (OSError(errno.EACCES, "Permission denied"), "writable", "disk space"),
        (OSError(errno.EROFS, "Read-only file system"), "writable", "disk space"),
        (sqlite3.OperationalError("table llm_proxy_backup_origin already exists"), "report", "disk space"),
        (sqlite3.DatabaseError("database or disk is full"), "free disk space", "writable"),
    ],
)
def test_a_failed_backup_names_its_real_cause(error: BaseException, says: str, never: str) -> None:
    hint = sqlite_backup.backup_failure_hint(error)
    assert says in hint and never not in hint, hint


def test_a_copy_that_cannot_be_written_is_exit_8_with_the_right_hint(sqlite_settings: Settings, tmp_path) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BackupError) as raised:
        backup.backup(sqlite_settings, tmp_path / "a-file" / "x.bak")
    assert raised.value.exit_code == 8
    assert "disk space" not in (raised.value.hint or "") and "writable" in (raised.value.hint or "")
