"""Backups before schema changes, rotation, restore, and the rehearsal on a copy (SQLite)."""

from __future__ import annotations

import hashlib
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import BackupError, ConfigError, UnknownRevisionError
from llm_proxy_db.safety import backup, sqlite_backup
from tests import legacy
from tests.safety_helpers import HEAD, another_process_can_write, revision_of, rows, seed, settings_env


@pytest.fixture
def db(sqlite_settings: Settings) -> Settings:
    """A SQLite database at head with a few rows."""
    commands.upgrade(sqlite_settings, no_backup=True)
    seed(sqlite_settings)
    return sqlite_settings


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bak_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.bak"))


# --- automatic backups ----------------------------------------------------------------


def test_upgrade_takes_a_checked_backup_named_after_time_and_revision(db: Settings) -> None:
    commands.downgrade(db, steps=2, no_backup=True)
    result = commands.upgrade(db)
    assert result.backup is not None and result.backup.parent == db.database_path.parent
    name = result.backup.name
    assert name.startswith("llm-proxy.db.") and name.endswith(".0005.bak")
    sqlite_backup.check_database(result.backup)
    copy = Settings(driver="sqlite", database_path=result.backup)
    assert revision_of(copy) == "0005"


def test_no_backup_when_nothing_is_pending(db: Settings) -> None:
    result = commands.upgrade(db)
    assert result.backup is None and result.steps == []
    assert bak_files(db.database_path.parent) == []


def test_an_unwritable_backup_directory_blocks_the_migration(db: Settings, tmp_path: Path) -> None:
    """A backup that cannot be written means no migration (root ignores chmod: use a file)."""
    commands.downgrade(db, steps=1, no_backup=True)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    with pytest.raises(BackupError) as caught:
        commands.upgrade(db, backup_dir=blocker / "backups")
    assert "cannot write the backup" in caught.value.message and caught.value.exit_code == 8
    assert revision_of(db) == "0006"
    result = commands.upgrade(db, backup_dir=blocker / "backups", no_backup=True)
    assert result.after == HEAD and result.backup is None


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_blocks_the_migration(db: Settings) -> None:
    """A backup that runs out of space stops ``migrate up`` (exit 8) and leaves no partial file."""
    commands.downgrade(db, steps=1, no_backup=True)
    limit = db.database_path.stat().st_size // 2
    # not measured: coverage could not write its data file under the size limit either
    env = {k: v for k, v in settings_env(db).items() if not k.startswith("COVERAGE_")}
    completed = subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "migrate", "up"],
        env=env, capture_output=True, text=True,
        preexec_fn=_file_size_limit(limit), check=False,
    )
    assert completed.returncode == 8, completed.stderr
    assert completed.stderr.startswith("Error: cannot write the backup"), completed.stderr
    assert "Traceback" not in completed.stderr
    assert revision_of(db) == "0006" and bak_files(db.database_path.parent) == []


def test_rotation_keeps_the_newest_and_never_the_one_just_taken(
    db: Settings, tmp_path: Path
) -> None:
    directory = tmp_path / "rotated"
    taken = []
    for _ in range(4):
        commands.downgrade(db, steps=1, backup_dir=directory, keep_backups=2)
        taken.append(commands.upgrade(db, backup_dir=directory, keep_backups=2).backup)
    remaining = bak_files(directory)
    assert len(remaining) == 2 and taken[-1] in remaining
    assert sqlite_backup.prune(directory, sqlite_backup._prefix(db.database_path.resolve()), 1, protect=taken[-1]) != []
    assert bak_files(directory) == [taken[-1]]


@pytest.mark.parametrize("value", [0, -3])
def test_keeping_no_backup_is_refused(value: int) -> None:
    with pytest.raises(ConfigError):
        backup.keep_backups(value)


def test_keep_backups_from_the_environment() -> None:
    assert backup.keep_backups(None, {backup.KEEP_BACKUPS_ENV: "9"}) == 9
    assert backup.keep_backups(None, {}) == backup.DEFAULT_KEEP_BACKUPS
    with pytest.raises(ConfigError):
        backup.keep_backups(None, {backup.KEEP_BACKUPS_ENV: "many"})


def test_backup_dir_from_the_environment(db: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(backup.BACKUP_DIR_ENV, str(tmp_path / "env-backups"))
    commands.downgrade(db, steps=1)
    assert len(bak_files(tmp_path / "env-backups")) == 1


# --- explicit backup and restore --------------------------------------------------------


def test_backup_then_restore_returns_the_same_rows(db: Settings, tmp_path: Path) -> None:
    original = rows(db)
    saved = backup.backup(db, tmp_path / "saved.db")
    with sqlite3.connect(db.database_path) as conn:
        conn.execute("DELETE FROM tokens")
        conn.execute("INSERT INTO projects (id, name, api_key) VALUES ('px', 'later', 'k')")
    changed = rows(db)
    result = backup.restore(db, saved)
    assert rows(db) == original
    assert result.revision == HEAD and result.safety_copy is not None
    assert rows(Settings(driver="sqlite", database_path=result.safety_copy)) == changed


def test_restore_keeps_its_write_lock_while_it_takes_the_safety_copy(
    db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In rollback-journal mode the restore's write lock is a POSIX lock on the file, which a
    plain open() and close() in this process would drop: no other process may write while the
    safety copy is taken."""
    with sqlite3.connect(db.database_path) as conn:
        conn.execute("PRAGMA journal_mode=delete")
    saved = backup.backup(db, tmp_path / "saved.db")
    real = sqlite_backup._safety_copy
    writable: list[bool] = []

    def safety_copy_then_try_to_write(database: Path, directory: Path, damaged: bool) -> Path:
        kept = real(database, directory, damaged)
        writable.append(another_process_can_write(database))
        return kept

    monkeypatch.setattr(sqlite_backup, "_safety_copy", safety_copy_then_try_to_write)
    backup.restore(db, saved)
    assert writable == [False]  # the service's writer was kept out ("database is locked")


def test_backup_without_out_goes_to_the_rotation(db: Settings) -> None:
    path = backup.backup(db)
    assert path.parent == db.database_path.parent and path.name.endswith(f".{HEAD}.bak")


def test_backup_refuses_to_overwrite(db: Settings, tmp_path: Path) -> None:
    taken = backup.backup(db, tmp_path / "once.db")
    with pytest.raises(BackupError):
        backup.backup(db, taken)


def test_backup_of_a_missing_database_is_an_error(sqlite_settings: Settings) -> None:
    with pytest.raises(BackupError):
        backup.backup(sqlite_settings)


CRASHED_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("INSERT INTO projects (id, name, api_key) VALUES ('wal', 'only in the wal', 'k')")
os._exit(0)  # dies without closing: the committed row stays in the -wal file
"""


def test_restore_deals_with_a_stale_wal(db: Settings, tmp_path: Path) -> None:
    """A -wal left by a crashed service is folded into the safety copy, never into the restore."""
    saved = backup.backup(db, tmp_path / "saved.db")
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(db.database_path)], check=True)
    wal = db.database_path.with_name(db.database_path.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    result = backup.restore(db, saved)
    assert not wal.exists() or wal.stat().st_size == 0
    assert ("wal", "only in the wal", "k") not in rows(db)["projects"]
    copy = Settings(driver="sqlite", database_path=result.safety_copy)
    assert ("wal", "only in the wal", "k") in rows(copy)["projects"]


def test_restore_into_a_missing_database(db: Settings, tmp_path: Path) -> None:
    saved = backup.backup(db, tmp_path / "saved.db")
    target = Settings(driver="sqlite", database_path=tmp_path / "fresh" / "llm-proxy.db")
    result = backup.restore(target, saved)
    assert result.safety_copy is None and rows(target) == rows(db)


@pytest.mark.parametrize(
    "kind", ["missing", "text", "empty", "foreign", "corrupt", "lookalike", "drifted", "unknown"]
)
def test_restore_refuses_what_is_not_an_llm_proxy_backup(
    db: Settings, tmp_path: Path, kind: str
) -> None:
    before = digest(db.database_path)
    candidate = tmp_path / f"{kind}.db"
    if kind == "text":
        candidate.write_text("id,name\n1,x\n")
    elif kind == "empty":
        candidate.write_bytes(b"")
    elif kind == "foreign":
        with sqlite3.connect(candidate) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
    elif kind == "corrupt":
        shutil.copy(db.database_path, candidate)
        data = bytearray(candidate.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)
        candidate.write_bytes(bytes(data))
    elif kind == "lookalike":  # tables named like ours, nothing else
        with sqlite3.connect(candidate) as conn:
            conn.execute("CREATE TABLE projects (x)")
            conn.execute("CREATE TABLE tokens (y)")
    elif kind == "drifted":  # versioned at head, an index gone
        backup.backup(db, candidate)
        with sqlite3.connect(candidate) as conn:
            conn.execute("DROP INDEX idx_tokens_expires_at")
    elif kind == "unknown":  # unversioned, matching no known state
        legacy.create(Settings(driver="sqlite", database_path=candidate), _l1(), "index-missing")
    with pytest.raises(BackupError) as refused:
        backup.restore(db, candidate)
    assert digest(db.database_path) == before
    if kind in ("lookalike", "drifted", "unknown"):
        assert "does not hold a recognisable llm-proxy schema" in refused.value.message
        assert refused.value.exit_code == 8
    if kind != "lookalike":
        assert ("missing index idx_tokens_expires_at on tokens" in refused.value.message) == (
            kind in ("drifted", "unknown")
        )


def _l1() -> legacy.Legacy:
    return next(shape for shape in legacy.shapes("sqlite") if shape.name == "L1")


def test_restore_accepts_an_unversioned_database_of_a_known_state(
    db: Settings, tmp_path: Path
) -> None:
    """A copy of a database the service created (L1, never stamped) restores; setup adopts it."""
    saved = Settings(driver="sqlite", database_path=tmp_path / "l1.db")
    legacy.create(saved, _l1())
    result = backup.restore(db, saved.database_path)
    assert result.revision is None
    assert commands.status(db).detected_state == "0002"


def test_restore_refuses_a_backup_from_a_newer_release(db: Settings, tmp_path: Path) -> None:
    saved = backup.backup(db, tmp_path / "newer.db")
    with sqlite3.connect(saved) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(UnknownRevisionError, match="9999"):
        backup.restore(db, saved)


def test_backup_out_may_name_a_directory(db: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    written = backup.backup(db, folder)
    assert written.parent == folder and written.name.endswith(f".{HEAD}.bak")
    assert rows(Settings(driver="sqlite", database_path=written)) == rows(db)


def test_backup_of_a_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="is a directory"):
        backup.backup(Settings(driver="sqlite", database_path=tmp_path))


def test_a_refused_downgrade_says_nothing_changed(db: Settings) -> None:
    """The downgrade of 0007 refuses 'denied' events: the hint must not send anyone to restore."""
    import sqlalchemy as sa

    from llm_proxy_db.database import connect
    from llm_proxy_db.errors import MigrationError

    with connect(db) as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
                "VALUES ('d1', '2025-01-01', 'a', 'b', 'denied')"
            )
        )
        connection.commit()
    with pytest.raises(MigrationError) as excinfo:
        commands.downgrade(db, steps=1, allow_data_loss=True)
    assert excinfo.value.backup_file is not None
    assert "nothing was changed" in (excinfo.value.hint or "")


def test_a_new_database_gets_no_backup(sqlite_settings: Settings) -> None:
    """Nothing to lose: a brand-new (or table-less) file is migrated without a backup."""
    result = commands.upgrade(sqlite_settings)
    assert result.backup is None
    assert bak_files(sqlite_settings.database_path.parent) == []
