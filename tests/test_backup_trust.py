"""Backups and restores an operator can trust (issue 12): real paths, identity, modes and
owners, concurrent writers, damaged databases, interrupted runs, lock files of other users."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_proxy_db import commands, files
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import BackupError
from llm_proxy_db.safety import backup, sqlite_backup
from llm_proxy_db.safety.locking import lock_file, migration_lock
from tests.safety_helpers import rows, seed

NOBODY = 65534
IS_ROOT = os.geteuid() == 0


def at_head(path: Path, **seeded: int) -> Settings:
    settings = Settings(driver="sqlite", database_path=path)
    commands.upgrade(settings, no_backup=True)
    seed(settings, **seeded)
    return settings


@pytest.fixture
def db(tmp_path: Path) -> Settings:
    return at_head(tmp_path / "data" / "llm-proxy.db")


def project_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM projects")}


def add_project(path: Path, name: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO projects (id, name, api_key) VALUES (?, ?, 'k')", (name, name))


# 1. Paths resolved once --------------------------------------------------------------


def test_restore_through_a_symlink_replaces_the_real_database(db: Settings, tmp_path: Path) -> None:
    real = db.database_path
    link = tmp_path / "link.db"
    link.symlink_to(real)
    through_link = Settings(driver="sqlite", database_path=link)
    saved = backup.backup(through_link, tmp_path / "saved.db")
    add_project(real, "added later")
    backup.restore(through_link, saved)
    assert link.is_symlink() and "added later" not in project_names(real)
    assert lock_file(through_link) == lock_file(db)


# 2. Identity of backups ---------------------------------------------------------------


def test_rotation_in_a_shared_directory_keeps_other_databases_backups(tmp_path: Path) -> None:
    shared = tmp_path / "backups"
    first = at_head(tmp_path / "a" / "llm-proxy.db")
    second = at_head(tmp_path / "b" / "llm-proxy.db")
    theirs = backup.take_backup(second, "0007", backup_dir=shared, keep=2)
    for _ in range(3):
        backup.take_backup(first, "0007", backup_dir=shared, keep=2)
        time.sleep(1.0)  # distinct time stamps
    assert theirs.exists()
    assert len([p for p in shared.glob("*.bak") if p != theirs]) == 2


def test_restore_refuses_another_databases_backup_unless_forced(tmp_path: Path) -> None:
    first = at_head(tmp_path / "a" / "llm-proxy.db")
    second = at_head(tmp_path / "b" / "llm-proxy.db", projects=1)
    theirs = backup.backup(second, tmp_path / "theirs.bak")
    with pytest.raises(BackupError, match="backup of another database"):
        backup.restore(first, theirs)
    assert len(project_names(first.database_path)) == 3
    result = backup.restore(first, theirs, force=True)
    assert result.origin == str(second.database_path.resolve())
    assert len(project_names(first.database_path)) == 1


# 3. Modes and owners --------------------------------------------------------------------


def test_backups_and_restores_keep_the_database_mode(db: Settings, tmp_path: Path) -> None:
    os.chmod(db.database_path, 0o600)
    lock_file(db).unlink()  # created by the set-up while the database was still 0644
    old = os.umask(0o022)
    try:
        saved = backup.backup(db, tmp_path / "saved.bak")
        auto = backup.take_backup(db, "0007")
        result = backup.restore(db, saved)
    finally:
        os.umask(old)
    for path in (saved, auto, result.safety_copy, db.database_path, lock_file(db)):
        assert path is not None and (path.stat().st_mode & 0o777) == 0o600, path


def test_copies_are_private_while_being_written(tmp_path: Path) -> None:
    """The temporary file exists with mode 0600 before a byte of the copy is in it."""
    target = tmp_path / "copy.bak"
    with files.written_then_renamed(target, None) as temporary:
        assert temporary.stat().st_mode & 0o777 == 0o600 and temporary.stat().st_size == 0
        temporary.write_bytes(b"x")
    assert target.exists() and not temporary.exists()


@pytest.mark.skipif(not IS_ROOT, reason="needs root to own files as another user")
def test_root_restore_keeps_the_service_users_owner(db: Settings, tmp_path: Path) -> None:
    for path in (db.database_path.parent, db.database_path):
        os.chown(path, NOBODY, NOBODY)
    saved = backup.backup(db, tmp_path / "saved.bak")
    result = backup.restore(db, saved)
    for path in (db.database_path, result.safety_copy, saved):
        assert path is not None and path.stat().st_uid == NOBODY, path


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside root's private pytest tree that user nobody can write."""
    directory = Path(tempfile.mkdtemp(prefix="llm-proxy-trust-"))
    os.chmod(directory, 0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HOME": "/tmp"},
    )


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run as user nobody (skips the test when nobody cannot read this checkout)."""
    if _run_as_nobody("-c", "import llm_proxy_db").returncode != 0:
        pytest.skip("user nobody cannot read this checkout or its virtualenv (e.g. a clone under a 0700 "
                    "mktemp directory): the tests run as another user are skipped")
    return _run_as_nobody("-m", "llm_proxy_db", *args)


@pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_non_root_user_gets_private_backups(shared_dir: Path) -> None:
    path = shared_dir / "llm-proxy.db"
    made = as_nobody("--database-path", str(path), "setup")
    assert made.returncode == 0, made.stderr
    os.chmod(path, 0o600)
    taken = as_nobody("--database-path", str(path), "db", "backup", "--backup-dir", str(shared_dir))
    assert taken.returncode == 0, taken.stderr
    written = Path(taken.stdout.split("backup: ")[1].strip())
    assert written.stat().st_uid == NOBODY and written.stat().st_mode & 0o777 == 0o600


# 7. Lock files --------------------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_lock_file_root_created_works_for_the_service_user(shared_dir: Path) -> None:
    path = shared_dir / "llm-proxy.db"
    assert as_nobody("--database-path", str(path), "migrate", "up", "--to", "0006").returncode == 0
    settings = Settings(driver="sqlite", database_path=path)
    lock_file(settings).unlink()
    with migration_lock(settings, None, timeout=1):  # root creates the lock file
        pass
    assert lock_file(settings).stat().st_uid == NOBODY
    os.chown(lock_file(settings), 0, 0)  # as an older release left it: root's, 0644
    os.chmod(lock_file(settings), 0o644)
    done = as_nobody("--database-path", str(path), "migrate", "up")
    assert done.returncode == 0, done.stderr


# 4. Concurrent writers, damaged databases, operator additions ----------------------------

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("PRAGMA journal_mode=WAL")  # as the service runs it
deadline = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < deadline:
    try:
        conn.execute("INSERT INTO projects (id, name, api_key) VALUES (?, ?, 'k')", (f"w{n}", f"w{n}"))
    except sqlite3.Error:
        continue  # refused: not acknowledged, the service would report it
    print(f"w{n}", flush=True)  # acknowledged: the commit returned
    n += 1
"""


def test_restore_under_a_concurrent_writer_loses_no_acknowledged_write(db: Settings, tmp_path: Path) -> None:
    saved = backup.backup(db, tmp_path / "saved.bak")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db.database_path), "3"], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    result = backup.restore(db, saved)
    acknowledged = set(writer.communicate(timeout=60)[0].split())
    assert writer.returncode == 0 and len(acknowledged) > 10
    assert result.safety_copy is not None
    kept = project_names(db.database_path) | project_names(result.safety_copy)
    assert acknowledged <= kept, sorted(acknowledged - kept)[:5]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pages"])
def test_restore_replaces_a_damaged_database(db: Settings, tmp_path: Path, damage: str) -> None:
    saved = backup.backup(db, tmp_path / "saved.bak")
    path = db.database_path
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(data[:4096] + b"\xff" * 8192 + data[4096 + 8192 :])
    os.chmod(path, 0o640)
    damaged = path.read_bytes()
    result = backup.restore(db, saved)
    assert result.replaced_damaged and result.safety_copy is not None
    assert result.safety_copy.read_bytes() == damaged  # kept byte for byte
    assert rows(db)["projects"] and path.stat().st_mode & 0o777 == 0o640


def test_restore_accepts_a_backup_with_an_operator_index(db: Settings, tmp_path: Path) -> None:
    with sqlite3.connect(db.database_path) as connection:
        connection.execute("CREATE INDEX ops_tokens_last_used ON tokens(last_used_at)")
    automatic = backup.take_backup(db, "0007")
    assert backup.restore(db, automatic).revision == "0007"


# 5. Interrupted copies ------------------------------------------------------------------


def test_a_killed_runs_leftovers_are_not_backups_and_are_removed(db: Settings) -> None:
    directory = db.database_path.parent
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    final = directory / f"{sqlite_backup._prefix(db.database_path.resolve())}.20250101T000000Z.0007.bak"
    leftover = files.temporary_name(final).with_name(f".{final.name}.{pid}.tmp")
    leftover.write_bytes(b"partial")
    (directory / (leftover.name + "-journal")).write_bytes(b"j")
    taken = backup.take_backup(db, "0007", keep=1)
    assert not leftover.exists() and not (directory / (leftover.name + "-journal")).exists()
    assert sorted(directory.glob("*.bak")) == [taken]


def test_sigterm_during_a_backup_leaves_nothing(tmp_path: Path) -> None:
    settings = at_head(tmp_path / "big" / "llm-proxy.db", projects=2000, tokens_each=20, events=20000)
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_proxy_db", "--database-path", str(settings.database_path),
         "db", "backup", "--out", str(out / "b.bak")],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not any(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)  # the temporary copy exists: the copy has started
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert process.returncode in (0, 128 + signal.SIGTERM)
