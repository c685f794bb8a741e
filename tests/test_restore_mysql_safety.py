"""``db restore`` on MySQL/MariaDB: a dump naming a database is refused, the version tables
are loaded last, a forced restore over an unknown revision warns, a signal during the load
names the safety dump and ends the client tool (real MariaDB server, real client tools)."""

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

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects.mysql import version_tables_last
from llm_proxy_db.errors import BackupError
from llm_proxy_db.safety import backup
from tests.safety_helpers import HEAD, revision_of, server_database_at_head
from tests.test_cli_safety import cli

pytestmark = pytest.mark.parametrize("dialect", [pytest.param("mysql", marks=pytest.mark.mysql)])


@pytest.fixture
def filled(settings: Settings) -> Settings:
    """A MySQL database at head with rows."""
    return server_database_at_head(settings, projects=3, tokens_each=2, events=5)


def _tables(settings: Settings) -> list[str]:
    with connect(settings, create=False) as conn:
        return sorted(sa.inspect(conn).get_table_names())


def test_the_version_tables_are_fed_last_before_the_closing_settings(filled: Settings, tmp_path: Path) -> None:
    dump = backup.backup(filled, tmp_path)
    original = dump.read_bytes()
    stream = b"".join(version_tables_last(dump))
    assert sorted(stream.splitlines()) == sorted(original.splitlines())  # nothing lost, nothing added
    tokens = stream.index(b"INSERT INTO `tokens`")
    for table in (b"alembic_version", b"goose_db_version"):
        assert original.index(b"CREATE TABLE `" + table) < original.index(b"INSERT INTO `tokens`")
        assert stream.index(b"CREATE TABLE `" + table) > tokens
        assert stream.index(b"INSERT INTO `" + table) > tokens
    assert stream.index(b"INSERT INTO `alembic_version`") < stream.index(b"SET TIME_ZONE=@OLD_TIME_ZONE")
    assert stream.rstrip().splitlines()[-1].startswith(b"-- Dump completed")


@pytest.mark.parametrize(
    "statement",
    [
        "USE `elsewhere`;",
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `elsewhere`;",
        "/*!40000 DROP DATABASE IF EXISTS `x`*/;",
    ],
)
def test_a_dump_naming_a_database_is_refused_with_exit_8(filled: Settings, tmp_path: Path, statement: str) -> None:
    dump = backup.backup(filled, tmp_path)
    text = dump.read_text()
    cut = text.index("--\n-- Table structure")
    named = tmp_path / "named.sql"
    named.write_text(text[:cut] + statement + "\n" + text[cut:])
    before = _tables(filled)
    result = cli(filled, "db", "restore", str(named), "--force")
    assert result.exit_code == 8, result.output
    assert "names a database" in result.output and "not touched" in result.output
    assert _tables(filled) == before and not list(tmp_path.glob("*pre-restore*"))


def test_a_forced_restore_over_an_unknown_revision_warns(
    filled: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = backup.backup(filled, tmp_path)
    with connect(filled) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()
    result = backup.restore(filled, dump, backup_dir=tmp_path / "safety", force=True)
    err = capsys.readouterr().err
    assert "warning" in err and "'9999'" in err
    assert result.revision == HEAD == revision_of(filled) and result.safety_copy is not None


def test_a_load_leaving_no_tables_fails_naming_the_safety_dump(filled: Settings, tmp_path: Path) -> None:
    dump = backup.backup(filled, tmp_path)
    text = dump.read_text()
    emptied = tmp_path / "emptied.sql"  # loads fine, then drops our tables again
    emptied.write_text(text.replace("-- Dump completed", "DROP TABLE tokens;\n-- Dump completed"))
    with pytest.raises(BackupError, match="no tokens table") as caught:
        backup.restore(filled, emptied, backup_dir=tmp_path / "safety", force=True)
    assert "pre-restore" in (caught.value.hint or "")


def _restore_through(settings: Settings, dump: Path, tmp_path: Path, client: str) -> subprocess.Popen[str]:
    """``llm-proxy db restore --force`` in a child process whose ``mariadb`` is the shell script
    ``client`` (first on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "mariadb"
    fake.write_text(client)
    fake.chmod(0o700)
    url = settings.sqlalchemy_url().render_as_string(hide_password=False)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    executable = Path(sys.executable).parent / "llm-proxy"
    return subprocess.Popen(
        [str(executable), "--db-driver", "mysql", "--database-url", url, "db", "restore", str(dump), "--force",
         "--backup-dir", str(tmp_path / "safety")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_sigterm_during_the_load_names_the_safety_dump_and_ends_the_client(
    filled: Settings, tmp_path: Path
) -> None:
    dump = backup.backup(filled, tmp_path)
    pid_file = tmp_path / "client.pid"  # a client that never finishes loading
    process = _restore_through(filled, dump, tmp_path, f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        client = int(pid_file.read_text())
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    safety = next((tmp_path / "safety").glob("*.pre-restore.sql"))
    assert str(safety) in err and "Traceback" not in err
    assert "Error: the restore of" in err and f"Hint: the previous contents are in {safety}" in err, err
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(client, 0)


def _cut_short_restore(settings: Settings, dump: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """``db restore --force`` whose client loads the dump only up to the first ``tokens`` rows
    (then hangs), ended by ``sig``; the client is killed afterwards (as a SIGKILL of the whole
    process group would)."""
    pid_file = tmp_path / "client.pid"
    real = shutil.which("mariadb") or shutil.which("mysql")
    assert real is not None
    process = _restore_through(settings, dump, tmp_path, (
        f"#!/bin/sh\necho $$ > {pid_file}\nsed '/^INSERT INTO `tokens`/q' | {real} \"$@\"\n"
        f"echo loaded >> {pid_file}\nexec sleep 60\n"
    ))
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and "loaded" in pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(sig)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_restore_cut_short_is_recognised_and_refused_until_redone(
    settings: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    """The load stopped after part of the rows: status says the restore did not finish (not
    "detected 0007"), every command that writes or adopts refuses (exit 6, hint: redo the
    restore), and the restore run again brings every row back."""
    from llm_proxy_db import commands

    filled = server_database_at_head(settings, projects=3, tokens_each=40, events=5)
    dump = backup.backup(filled, tmp_path)
    with connect(filled) as conn:
        conn.exec_driver_sql("DELETE FROM tokens WHERE project_id IN (SELECT id FROM projects) LIMIT 10")
        conn.commit()
    _cut_short_restore(filled, dump, tmp_path, sig)

    status = commands.status(filled)
    assert status.current_revision is None and status.detected_state != HEAD
    (line,) = status.unfinished
    assert "did not finish" in line and "db restore" in line
    shown = cli(filled, "migrate", "status")
    assert "partial:" in shown.output and "did not finish" in shown.output
    for args in (["setup"], ["migrate", "up"], ["migrate", "adopt"], ["migrate", "adopt", "--force-stamp", HEAD]):
        result = cli(filled, *args, "--no-backup")
        assert result.exit_code == 6, (args, result.output)
        assert "redo the restore" in result.output and "db restore" in result.output
    assert revision_of(filled) is None

    assert cli(filled, "db", "restore", str(dump), "--force", "--backup-dir", str(tmp_path / "again")).exit_code == 0
    assert commands.status(filled).unfinished == [] and revision_of(filled) == HEAD
    with connect(filled) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM tokens").scalar() == 120
        assert "llm_proxy_unfinished" not in sa.inspect(conn).get_table_names()
