"""SQLite files the tool creates or puts in place are in the service's WAL mode (issue 21, item 10).

The service opens its file with WAL journaling; switching a rollback-journal file to WAL needs
the file to itself, so until the service's first open any write transaction elsewhere (the
tool, a cron job) makes the service's start-up fail at once with "database is locked".  Files
created by ``setup``, kept through a rebuild (0005), a backup, and a restore (in place, into a
missing path, over a damaged file) must all be in WAL mode.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.sqlite.journal import journal_mode
from llm_proxy_db.safety import backup
from tests.safety_helpers import seed
from tests.service_emulator import start_service


def test_setup_creates_the_file_in_wal_mode(sqlite_settings: Settings) -> None:
    commands.setup(sqlite_settings)
    assert sqlite_settings.database_path is not None
    assert journal_mode(sqlite_settings.database_path) == "wal"


def test_the_service_starts_while_another_connection_writes(sqlite_settings: Settings) -> None:
    """The service's start-up waits for a short write transaction instead of failing."""
    commands.upgrade(sqlite_settings, "0001", no_backup=True)  # the tool made the file
    assert sqlite_settings.database_path is not None
    writer = sqlite3.connect(sqlite_settings.database_path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    releaser.start()
    try:
        start_service(sqlite_settings)  # busy timeout 5 s: waits for the commit
    finally:
        releaser.join()
        writer.close()


def test_wal_mode_survives_rebuilds_backups_and_restores(sqlite_settings: Settings, tmp_path) -> None:
    database = sqlite_settings.database_path
    assert database is not None
    commands.upgrade(sqlite_settings, "0004", no_backup=True)
    commands.upgrade(sqlite_settings, no_backup=True)  # 0005 rebuilds tokens, 0007 audit_events
    seed(sqlite_settings)
    assert journal_mode(database) == "wal"
    taken = backup.backup(sqlite_settings, tmp_path / "x.bak")
    assert journal_mode(database) == "wal"
    backup.restore(sqlite_settings, taken, backup_dir=tmp_path / "safety")  # in place
    assert journal_mode(database) == "wal"
    database.unlink()
    backup.restore(sqlite_settings, taken, backup_dir=tmp_path / "safety")  # into a missing path
    assert journal_mode(database) == "wal"
    database.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)  # damaged
    backup.restore(sqlite_settings, taken, backup_dir=tmp_path / "safety", force=True)
    assert journal_mode(database) == "wal"
    assert time.time()  # (no timing asserted: bench/ measures)
