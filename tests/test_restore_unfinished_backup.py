"""A MySQL restore cut short is never laundered through a dump (issue 21, hostile review F1).

The database a cut-short ``db restore`` leaves holds part of the dump's rows and is marked
(``llm_proxy_unfinished``).  ``db backup`` of it is refused (exit 8); a dump that carries the
marker (taken by hand, or the safety dump of such a database a later restore takes) is refused
by ``db restore`` (exit 8); and a restore stopped over such a database names the good copies
(the dump it loads, the safety dump taken before the first restore), never the dump of the
partial database.  PostgreSQL, the same class: a restore killed half-way leaves the old
contents whole (one transaction), so a backup then is a good copy.  Real servers, real client
tools, the restore a real subprocess ended by a signal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import server_dialect_for, unfinished
from llm_proxy_db.dialects.mysql import version_tables_last
from llm_proxy_db.safety import backup
from tests.safety_helpers import HEAD, revision_of, server_database_at_head
from tests.test_cli_safety import cli
from tests.test_restore_mysql_safety import _restore_through

MYSQL = pytest.mark.parametrize("dialect", [pytest.param("mysql", marks=pytest.mark.mysql)])
POSTGRESQL = pytest.mark.parametrize("dialect", [pytest.param("postgresql", marks=pytest.mark.postgresql)])

TOKENS = 120


def _cut_short(
    settings: Settings, dump: Path, work: Path, sig: signal.Signals, until: str = "^INSERT INTO `tokens`"
) -> str:
    """``db restore --force`` (safety dumps in ``work/safety``) whose client loads the dump only
    up to the first line matching ``until`` (the first ``tokens`` rows), ended by ``sig``;
    returns its standard error."""
    work.mkdir(parents=True)
    pid_file = work / "client.pid"
    real = shutil.which("mariadb") or shutil.which("mysql")
    assert real is not None
    process = _restore_through(settings, dump, work, (
        f"#!/bin/sh\necho $$ > {pid_file}\nsed '/{until}/q' | {real} \"$@\"\n"
        f"echo loaded >> {pid_file}\nexec sleep 60\n"
    ))
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and "loaded" in pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    return err


def _tokens(settings: Settings) -> int:
    with connect(settings, create=False) as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM tokens").scalar() or 0)


@pytest.fixture
def good(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A database at head with rows, and a complete dump of it."""
    filled = server_database_at_head(settings, projects=3, tokens_each=TOKENS // 3, events=5)
    return filled, backup.backup(filled, tmp_path / "good.sql")


@MYSQL
def test_a_backup_of_a_database_whose_restore_did_not_finish_is_refused(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, dump = good
    _cut_short(settings, dump, tmp_path / "first", signal.SIGKILL)
    assert _tokens(settings) < TOKENS
    (first_safety,) = (tmp_path / "first" / "safety").glob("*.pre-restore.sql")

    out = tmp_path / "partial.sql"
    result = cli(settings, "db", "backup", "--out", str(out))
    assert result.exit_code == 8, result.output
    assert "refusing to back up" in result.output and "did not finish" in result.output
    assert f"db restore {dump.resolve()} --force" in result.output  # the good copies, by name
    assert f"db restore {first_safety} --force" in result.output
    assert "Traceback" not in result.output and not out.exists()
    rotated = cli(settings, "db", "backup", "--backup-dir", str(tmp_path / "rotation"))
    assert rotated.exit_code == 8, rotated.output
    assert not list((tmp_path / "rotation").glob("*")) if (tmp_path / "rotation").exists() else True


@MYSQL
def test_a_dump_carrying_an_unfinished_restore_is_refused_and_the_database_stays_marked(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """The dump a hand-made ``mariadb-dump`` (or any tool) takes of the partial database holds
    the marker: restoring it is refused, and setup then still refuses to adopt."""
    settings, dump = good
    _cut_short(settings, dump, tmp_path / "first", signal.SIGKILL)
    laundered = server_dialect_for(settings).dump(settings, tmp_path / "by-hand.sql")  # bypasses the refusal

    result = cli(settings, "db", "restore", str(laundered), "--force", "--backup-dir", str(tmp_path / "s2"))
    assert result.exit_code == 8, result.output
    assert "had not finished" in result.output and str(dump.resolve()) in result.output
    assert "not touched" in result.output
    assert commands.status(settings).unfinished  # still marked
    setup = cli(settings, "setup", "--no-backup")
    assert setup.exit_code == 6 and "redo the restore" in setup.output, setup.output
    assert revision_of(settings) is None


@MYSQL
def test_the_safety_dump_of_a_partial_database_is_named_so_and_never_restored(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """Redoing the restore over the partial database keeps its rows in a ``*.pre-restore.partial``
    dump; restoring that dump later is refused, so it cannot bring the partial rows back as whole."""
    settings, dump = good
    _cut_short(settings, dump, tmp_path / "first", signal.SIGKILL)
    redo = cli(settings, "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "redo"))
    assert redo.exit_code == 0, redo.output
    assert _tokens(settings) == TOKENS and revision_of(settings) == HEAD
    (partial,) = (tmp_path / "redo").glob("*.pre-restore.partial.sql")
    assert not [p for p in (tmp_path / "redo").glob("*.pre-restore.sql")]

    result = cli(settings, "db", "restore", str(partial), "--force", "--backup-dir", str(tmp_path / "s3"))
    assert result.exit_code == 8, result.output
    assert "had not finished" in result.output
    assert _tokens(settings) == TOKENS and revision_of(settings) == HEAD and not commands.status(settings).unfinished


@MYSQL
def test_a_restore_stopped_over_a_partial_database_names_the_good_copies(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """Interrupted twice: the second interruption's hint names the safety dump of the first
    (what the database held before any restore) and the dump being loaded, not the dump of the
    partial database it took meanwhile; the marker keeps the first safety dump for later hints."""
    settings, dump = good
    _cut_short(settings, dump, tmp_path / "first", signal.SIGKILL)
    (first_safety,) = (tmp_path / "first" / "safety").glob("*.pre-restore.sql")

    err = _cut_short(settings, dump, tmp_path / "second", signal.SIGTERM)
    (partial,) = (tmp_path / "second" / "safety").glob("*.pre-restore.partial.sql")
    assert "Error: the restore of" in err and "was interrupted" in err and "Traceback" not in err, err
    assert f"db restore --force {first_safety}" in err
    assert f"db restore --force {partial}" not in err and "not a backup" in err

    refusal = cli(settings, "setup", "--no-backup")
    assert refusal.exit_code == 6 and str(first_safety) in refusal.output, refusal.output
    back = cli(settings, "db", "restore", str(first_safety), "--force", "--backup-dir", str(tmp_path / "back"))
    assert back.exit_code == 0, back.output
    assert _tokens(settings) == TOKENS and not commands.status(settings).unfinished
    with connect(settings) as conn:
        assert "llm_proxy_unfinished" not in sa.inspect(conn).get_table_names()


@MYSQL
def test_a_dumps_marker_is_carried_by_the_restore_not_loaded_over_its_own(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """A dump of a database whose downgrade did not finish (the automatic backup before the
    downgrade is resumed) keeps that marker through a restore; the load never drops and
    recreates the marker table (a kill then would leave the restore's own marker lost), and a
    restore of a clean dump over a marked database leaves no stale marker behind."""
    settings, clean = good
    with connect(settings) as conn:
        unfinished.mark(conn, unfinished.DOWNGRADE, HEAD)
    marked = backup.backup(settings, tmp_path / "marked.sql")
    assert b"llm_proxy_unfinished" in marked.read_bytes()
    assert b"llm_proxy_unfinished" not in b"".join(version_tables_last(marked))

    assert cli(settings, "db", "restore", str(clean), "--force", "--backup-dir", str(tmp_path / "a")).exit_code == 0
    assert commands.status(settings).unfinished == []  # the replaced database's marker went with it
    assert cli(settings, "db", "restore", str(marked), "--force", "--backup-dir", str(tmp_path / "b")).exit_code == 0
    (line,) = commands.status(settings).unfinished
    assert "partly reverted" in line and _tokens(settings) == TOKENS


@POSTGRESQL
def test_a_postgresql_restore_killed_half_way_leaves_a_whole_database_to_back_up(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """The same class on PostgreSQL: its load is one transaction, so a restore killed (SIGKILL)
    while ``psql`` has loaded part of the rows leaves the old contents whole and unmarked, and a
    backup taken then is a good copy of them (SQLite: tests/test_backup.py)."""
    settings, dump = good
    with connect(settings) as conn:
        conn.exec_driver_sql("DELETE FROM tokens WHERE ctid IN (SELECT ctid FROM tokens LIMIT 10)")
        conn.commit()
    real, bin_dir, pid_file = shutil.which("psql"), tmp_path / "bin", tmp_path / "client.pid"
    assert real is not None
    bin_dir.mkdir()
    fake = bin_dir / "psql"  # loads the script up to the tokens' COPY, then hangs
    fake.write_text(
        f"#!/bin/sh\necho $$ > {pid_file}\nsed '/^COPY .*tokens /q' | {real} \"$@\"\n"
        f"echo loaded >> {pid_file}\nexec sleep 60\n"
    )
    fake.chmod(0o700)
    url = settings.sqlalchemy_url().render_as_string(hide_password=False)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "llm-proxy"), "--db-driver", "postgresql", "--database-url", url,
         "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "safety")],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and "loaded" in pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "loaded" in pid_file.read_text()
        process.kill()
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    assert _tokens(settings) == TOKENS - 10 and revision_of(settings) == HEAD
    assert commands.status(settings).unfinished == []
    copy = backup.backup(settings, tmp_path / "after-kill.dump")
    back = cli(settings, "db", "restore", str(copy), "--force", "--backup-dir", str(tmp_path / "again"))
    assert back.exit_code == 0, back.output
    assert _tokens(settings) == TOKENS - 10


@MYSQL
def test_a_restore_killed_before_projects_exists_says_redo_the_restore_never_force_stamp(
    good: tuple[Settings, Path], tmp_path: Path
) -> None:
    """Cut short before the dump's ``projects`` table: every command names the restore to redo,
    none suggests ``--force-stamp`` (which would stamp a database missing its tables)."""
    settings, dump = good
    _cut_short(settings, dump, tmp_path / "first", signal.SIGKILL, until="^-- Table structure for table `projects`")
    with connect(settings) as conn:
        assert "projects" not in sa.inspect(conn).get_table_names()
    for args in (["migrate", "status"], ["setup", "--no-backup"], ["migrate", "up", "--no-backup"],
                 ["migrate", "adopt", "--no-backup"], ["migrate", "verify"], ["migrate", "drift"], ["db", "backup"]):
        result = cli(settings, *args)
        assert "force-stamp" not in result.output, (args, result.output)
        assert "Traceback" not in result.output, (args, result.output)
        if result.exit_code != 0:
            assert "db restore" in result.output, (args, result.output)
