"""The byte copy of a pinned SQLite snapshot: consistent under a writer, checked, and left to
the backup API when no snapshot of the file alone can be pinned."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_proxy_db.dialects.sqlite import backup as sqlite_backup
from llm_proxy_db.dialects.sqlite import snapshot as sqlite_snapshot
from llm_proxy_db.errors import BackupError
from tests.safety_helpers import another_process_can_write

# Each transaction inserts the same number into two tables: a consistent copy has both equal.
WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
n = 0
while True:
    n += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO a VALUES (?, randomblob(3000))", (n,))
    conn.execute("INSERT INTO b VALUES (?)", (n,))
    conn.execute("COMMIT")
    time.sleep(0.001)
"""


def make_database(path: Path, journal_mode: str, rows: int = 2000) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={journal_mode}")
    connection.execute("CREATE TABLE a (n INTEGER PRIMARY KEY, pad BLOB)")
    connection.execute("CREATE TABLE b (n INTEGER PRIMARY KEY)")
    connection.execute("BEGIN")
    for n in range(-rows, 0):
        connection.execute("INSERT INTO a VALUES (?, randomblob(3000))", (n,))
        connection.execute("INSERT INTO b VALUES (?)", (n,))
    connection.execute("COMMIT")
    connection.close()


def counts(path: Path) -> tuple[int, int, str]:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        a = connection.execute("SELECT count(*) FROM a").fetchone()[0]
        b = connection.execute("SELECT count(*) FROM b").fetchone()[0]
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        return a, b, mode
    finally:
        connection.close()


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_byte_copy_under_a_writer_is_one_consistent_snapshot(
    tmp_path: Path, journal_mode: str
) -> None:
    source = tmp_path / "live.db"
    make_database(source, journal_mode)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source)])
    try:
        time.sleep(0.3)
        copies = []
        for index in range(8):  # a copy may give way to a writer: those are left out here
            target = empty_file(tmp_path / f"copy{index}.db")
            if sqlite_snapshot.snapshot_copy(source, target):
                copies.append(target)
    finally:
        writer.kill()
        writer.wait()
    assert copies, "no byte copy could pin a snapshot in 8 tries"
    for target in copies:
        a, b, _mode = counts(target)
        assert a == b >= 2000
    assert max(counts(target)[0] for target in copies) > 2000  # the writer did commit


def test_the_backup_is_in_rollback_journal_mode_and_checked(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    make_database(source, "wal", rows=50)
    target = tmp_path / "backup.db"
    sqlite_backup.copy_database(source, target, origin=False)
    assert counts(target) == (50, 50, "delete")
    assert not Path(f"{target}-wal").exists()
    sqlite_backup.check_database(target)


def test_a_reader_pinning_the_wal_leaves_the_copy_to_the_backup_api(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    make_database(source, "wal", rows=50)
    reader = sqlite3.connect(source, isolation_level=None)
    writer = sqlite3.connect(source, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM a").fetchone()  # an old snapshot: no TRUNCATE now
    writer.execute("INSERT INTO a VALUES (1, x'00')")
    writer.execute("INSERT INTO b VALUES (1)")
    try:
        assert not sqlite_snapshot.snapshot_copy(source, empty_file(tmp_path / "fast.db"))
        assert (tmp_path / "fast.db").stat().st_size == 0
        target = tmp_path / "backup.db"
        sqlite_backup.copy_database(source, target, origin=False)
    finally:
        reader.close()
        writer.close()
    assert counts(target) == (51, 51, "delete")  # the committed row is in the copy


def test_a_damaged_database_is_refused_and_no_backup_is_kept(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    make_database(source, "delete", rows=400)
    with open(source, "r+b") as handle:  # scribble over a leaf page of table a
        handle.seek(4096 * 20 + 100)
        handle.write(b"\xff" * 2000)
    target = tmp_path / "backup.db"
    with pytest.raises(BackupError) as raised:
        sqlite_backup.copy_database(source, target, origin=False)
    assert "quick_check" in str(raised.value) or "malformed" in str(raised.value)
    assert not target.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".backup")]


def test_a_switch_to_wal_just_before_the_copy_does_not_lose_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service switches the database to WAL and commits between our first look at the
    journal mode and our transaction: the committed row is in the backup all the same."""
    source = tmp_path / "live.db"
    make_database(source, "delete", rows=100)
    service = sqlite3.connect(source, isolation_level=None)
    real = sqlite_snapshot._journal_mode
    switched: list[str] = []

    def switch_once(reader: sqlite3.Connection) -> str:
        mode = real(reader)
        if not switched:
            switched.append(mode)
            service.execute("PRAGMA journal_mode=wal")
            service.execute("INSERT INTO a VALUES (1, x'00')")
            service.execute("INSERT INTO b VALUES (1)")
        return mode

    monkeypatch.setattr(sqlite_snapshot, "_journal_mode", switch_once)
    target = tmp_path / "backup.db"
    try:
        sqlite_backup.copy_database(source, target, origin=False)
    finally:
        service.close()
    assert switched == ["delete"]
    assert counts(target) == (101, 101, "delete")


def test_a_failed_copy_stops_the_check_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "live.db"
    make_database(source, "wal", rows=300)

    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_snapshot, "_copy_bytes", broken)
    target = tmp_path / "backup.db"
    with pytest.raises(BackupError, match="No space left"):
        sqlite_backup.copy_database(source, target, origin=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["live.db", "live.db-shm", "live.db-wal"] or (
        sorted(path.name for path in tmp_path.iterdir()) == ["live.db"]
    )


def test_the_snapshot_stays_locked_after_the_bytes_are_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check reads the very state that was copied: closing a descriptor of the database
    in this process would drop its POSIX locks, so the copy runs in a child process; another
    process still cannot write once the bytes are copied (rollback mode: our SHARED lock)."""
    source = tmp_path / "live.db"
    make_database(source, "delete", rows=50)
    real_copy = sqlite_snapshot._copy_bytes
    writable: list[bool] = []

    def copy_then_try_to_write(source_: Path, target: Path, length: int) -> None:
        real_copy(source_, target, length)
        writable.append(another_process_can_write(source_))

    monkeypatch.setattr(sqlite_snapshot, "_copy_bytes", copy_then_try_to_write)
    assert sqlite_snapshot.snapshot_copy(source, empty_file(tmp_path / "copy.db"))
    assert writable == [False]  # "database is locked"
