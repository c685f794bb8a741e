"""The safety net: one migrator at a time, backups, atomic failure, the version guard.

Real databases only: a SQLite file in a tmp dir or a fresh PostgreSQL database (the
``dialect`` fixture).  Processes are real processes; kills are real SIGKILLs.  Test-only
revision directories under ``tests/safety_revisions`` chain onto the real head.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.errors import (
    ConfigError,
    DatabaseConnectionError,
    LockTimeoutError,
    MigrationError,
    PendingMigrationsError,
    UnknownRevisionError,
)
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.executor import run
from llm_proxy_db.safety import locking
from llm_proxy_db.safety.guard import guarded_run
from llm_proxy_db.startup import auto_migrate_enabled, auto_upgrade
from tests.mysql_helpers import NOT_TRANSACTIONAL, skip_on_mysql
from tests.safety_helpers import (
    FAILING,
    HEAD,
    SLOW,
    backups_in,
    columns,
    revision_of,
    rows,
    seed,
    settings_env,
    tables,
)


@pytest.fixture
def at_head(settings: Settings) -> Settings:
    """A database at head holding a few rows."""
    commands.upgrade(settings, no_backup=True)
    seed(settings)
    return settings


# --- one migrator at a time --------------------------------------------------------------

BARRIER = """
import sys, time
from pathlib import Path
ready, go, mode = sys.argv[1:4]
if mode == "cli":
    from llm_proxy_db.cli.app import main
else:
    from llm_proxy_db.startup import auto_upgrade
Path(ready).write_text("ready")
while not Path(go).exists():
    time.sleep(0.01)
"""
RACERS = {
    # the service's startup call, through the library
    "library": BARRIER + "import json; print(json.dumps(auto_upgrade(enabled=True).as_dict()))",
    # an init container's `llm-proxy migrate up`, through the CLI
    "cli": BARRIER + "sys.argv = ['llm-proxy', 'migrate', 'up']; main()",
}


def _race(settings: Settings, tmp_path: Path, modes: list[str]) -> list[tuple[str, str, str]]:
    """Start one process per mode, release them together; returns (mode, stdout, stderr)."""
    go, env = tmp_path / "go", settings_env(settings)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACERS[mode], str(tmp_path / f"ready-{i}"), str(go), mode],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, mode in enumerate(modes)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(modes) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.write_text("go")
    outputs = []
    for mode, proc in zip(modes, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append((mode, out, err))
    return outputs


def _applied(mode: str, out: str, err: str) -> list[str]:
    """Revisions a racer applied: from the library's JSON, or the CLI's progress lines."""
    if mode == "library":
        return list(json.loads(out)["applied"])
    return [line.split()[3] for line in err.splitlines() if " done in " in line]


def test_eight_processes_at_once_apply_each_revision_once(settings: Settings, tmp_path: Path) -> None:
    """Eight replicas at once, half through ``auto_upgrade()``, half through ``llm-proxy
    migrate up``: all succeed, and every revision is applied exactly once, by one of them."""
    outputs = _race(settings, tmp_path, ["library", "cli"] * 4)
    applied = [rev for output in outputs for rev in _applied(*output)]
    assert applied == revisions.ids(), outputs
    migrators = [output for output in outputs if _applied(*output)]
    assert len(migrators) == 1, outputs
    for mode, out, _err in outputs:
        if mode == "library":
            assert json.loads(out)["after"] == HEAD
        elif (mode, out, _err) not in migrators:
            assert out.strip() == f"revision: {HEAD} (nothing to do)"
    assert revision_of(settings) == HEAD


KILLED = """
from llm_proxy_db import commands
from llm_proxy_db.dialects.resolve import resolve_settings
import sys
commands.upgrade(resolve_settings(), version_locations=[sys.argv[1]])
"""


def test_sigkill_in_the_middle_of_a_revision_then_rerun(settings: Settings, tmp_path: Path) -> None:
    """Killed in the middle of an audit_events rebuild: the last good revision, every row, a free
    lock; the rerun finishes the job."""
    skip_on_mysql(settings, NOT_TRANSACTIONAL)
    commands.upgrade(settings, no_backup=True)
    seed(settings, events=400)
    before = rows(settings)
    marker = tmp_path / "in-the-middle"
    env = settings_env(settings) | {"LLM_PROXY_TEST_SLOW_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, SLOW], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert revision_of(settings) == HEAD
    assert "rebuilt" not in columns(settings, "audit_events")
    assert rows(settings) == before
    result = commands.upgrade(settings, version_locations=[SLOW], lock_timeout=10)
    assert result.applied == ["x_slow"]
    assert rows(settings) == before
    assert "rebuilt" in columns(settings, "audit_events")


def _hold_lock(settings: Settings, seconds: float, held: threading.Event) -> None:
    with connect(settings) as conn, locking.migration_lock(settings, conn, timeout=5):
        held.set()
        time.sleep(seconds)


def test_a_held_lock_times_out_with_a_clear_message(settings: Settings) -> None:
    """A waiter reports that it waits, then gives up with LockTimeoutError."""
    held = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(settings, 0.8, held))
    holder.start()
    held.wait(5)
    events: list = []
    try:
        with pytest.raises(LockTimeoutError) as caught:
            commands.upgrade(settings, lock_timeout=0.3, progress=events.append)
    finally:
        holder.join()
    assert "waiting for the migration lock held by another process" in caught.value.message
    assert caught.value.exit_code == 7
    assert [e.kind for e in events] == ["lock_wait"]
    assert revision_of(settings) is None


def test_a_waiter_proceeds_when_the_lock_is_released(settings: Settings) -> None:
    """Within the timeout, the waiter takes the lock and finds the work still to do."""
    held = threading.Event()
    # MySQL: a process's first run may derive the known states on a scratch database (seconds,
    # when no committed data fits the server) before it asks for the lock; hold it long enough.
    holder = threading.Thread(target=_hold_lock, args=(settings, 6.0 if settings.is_mysql else 0.5, held))
    holder.start()
    held.wait(5)
    events: list = []
    result = commands.upgrade(settings, lock_timeout=20, progress=events.append)
    holder.join()
    kinds = [e.kind for e in events]
    waits = kinds[: kinds.index("lock_acquired")]  # one report per 5 s of waiting
    assert waits and set(waits) == {"lock_wait"}, kinds
    assert result.after == HEAD and result.lock_wait > 0.1


@pytest.mark.parametrize("raw, expected", [(None, 300.0), ("2.5", 2.5)])
def test_lock_timeout_from_the_environment(raw: str | None, expected: float) -> None:
    env = {} if raw is None else {locking.LOCK_TIMEOUT_ENV: raw}
    assert locking.lock_timeout(None, env) == expected


@pytest.mark.parametrize("raw", ["soon", "-1"])
def test_bad_lock_timeout_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError):
        locking.lock_timeout(None, {locking.LOCK_TIMEOUT_ENV: raw})


# --- failure and the version guard -------------------------------------------------------


def test_a_failing_revision_is_rolled_back_entirely(at_head: Settings, tmp_path: Path) -> None:
    """Half-way through a batch rebuild is still all-or-nothing; the error names everything."""
    settings = at_head
    skip_on_mysql(settings, NOT_TRANSACTIONAL)
    before_rows, before_projects = rows(settings), columns(settings, "projects")
    before_tables = tables(settings)
    with pytest.raises(MigrationError) as caught:
        commands.upgrade(settings, version_locations=[FAILING], backup_dir=tmp_path / "bk")
    error = caught.value
    assert error.failed_revision == "x_fail" and error.current_revision == HEAD
    assert "x_fail" in error.message and f"revision {HEAD}" in error.message
    if settings.is_sqlite:
        assert error.backup_file and error.backup_file in error.message
        assert Path(error.backup_file).exists()
    else:
        assert error.backup_file is None
    assert revision_of(settings) == HEAD
    assert columns(settings, "projects") == before_projects
    assert tables(settings) == before_tables
    assert rows(settings) == before_rows


def _stamp_newer(settings: Settings) -> None:
    with connect(settings) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()


NEWER_THAN_CODE_REFUSED_BY = {
    "upgrade": lambda s: commands.upgrade(s),
    "downgrade --steps": lambda s: commands.downgrade(s, steps=1),
    "downgrade --to": lambda s: commands.downgrade(s, "0001"),
    "setup": lambda s: commands.setup(s),
    "auto_upgrade": lambda s: auto_upgrade(s, enabled=True),
    "auto_upgrade (check only)": lambda s: auto_upgrade(s, enabled=False),
    "status": lambda s: commands.status(s),
}


def test_a_database_from_a_newer_release_is_refused(at_head: Settings) -> None:
    """Never migrated, downgraded or started against; nothing is written, not even a backup."""
    _stamp_newer(at_head)
    before = rows(at_head)
    for name, action in NEWER_THAN_CODE_REFUSED_BY.items():
        with pytest.raises(UnknownRevisionError) as caught:
            action(at_head)
        assert "9999" in caught.value.message, name
        assert revision_of(at_head) == "9999" and rows(at_head) == before, name
    if at_head.is_sqlite:
        assert backups_in(at_head.database_path.parent) == []


# --- startup ---------------------------------------------------------------------------


def test_auto_upgrade_at_head_is_one_cheap_read(at_head: Settings) -> None:
    """No lock is taken and no backup written when nothing is pending."""
    if at_head.is_sqlite:
        locking.lock_file(at_head).unlink()
    result = auto_upgrade(at_head, enabled=True)
    assert result.action == "up_to_date" and not result.changed and result.backup is None
    if at_head.is_sqlite:
        assert not locking.lock_file(at_head).exists()
        assert backups_in(at_head.database_path.parent) == []


def test_auto_upgrade_reports_what_changed(settings: Settings) -> None:
    commands.upgrade(settings, "0003", no_backup=True)
    result = auto_upgrade(settings, enabled=True)
    assert result.action == "upgraded" and result.changed
    assert result.as_dict()["applied"] == revisions.between("0003", HEAD)
    assert result.before == "0003" and result.after == HEAD
    assert (result.backup is not None) == settings.is_sqlite


def test_auto_migrate_off_refuses_to_start_behind(settings: Settings, monkeypatch) -> None:
    """With LLM_PROXY_AUTO_MIGRATE=0 startup never migrates; behind head it refuses."""
    monkeypatch.setenv("LLM_PROXY_AUTO_MIGRATE", "0")
    commands.upgrade(settings, "0005", no_backup=True)
    with pytest.raises(PendingMigrationsError) as caught:
        auto_upgrade(settings)
    assert "0006, 0007" in caught.value.message and caught.value.exit_code == 10
    assert revision_of(settings) == "0005"
    commands.upgrade(settings, no_backup=True)
    assert auto_upgrade(settings).action == "up_to_date"


@pytest.mark.parametrize("value, enabled", [("0", False), ("off", False), ("1", True), ("", True)])
def test_auto_migrate_switch(value: str, enabled: bool) -> None:
    assert auto_migrate_enabled({"LLM_PROXY_AUTO_MIGRATE": value}) is enabled


def test_auto_upgrade_without_settings_reads_the_service_variables(
    sqlite_settings: Settings, monkeypatch
) -> None:
    monkeypatch.setenv("DB_DRIVER", "sqlite")
    monkeypatch.setenv("DATABASE_PATH", str(sqlite_settings.database_path))
    assert auto_upgrade(enabled=True).after == HEAD
    assert revision_of(sqlite_settings) == HEAD


def test_an_unusable_lock_file_is_a_clear_error(sqlite_settings: Settings) -> None:
    """If the sidecar lock file cannot be opened, nothing migrates and the error says why."""
    locking.lock_file(sqlite_settings).parent.mkdir(parents=True)
    locking.lock_file(sqlite_settings).mkdir()  # a directory where the lock file belongs
    with pytest.raises(DatabaseConnectionError, match="migration lock file"):
        commands.upgrade(sqlite_settings)
    assert revision_of(sqlite_settings) is None


def test_a_custom_runner_gets_the_lock_and_the_backup(sqlite_settings: Settings) -> None:
    """Adoption plugs in as a runner: it runs on the locked connection, after the backup."""
    commands.upgrade(sqlite_settings, "0006", no_backup=True)
    seen = []

    def runner(connection, target):
        seen.append((target, locking.lock_file(sqlite_settings).exists()))
        return run(connection, target)

    outcome = guarded_run(sqlite_settings, lambda current: HEAD, runner=runner)
    assert seen == [(HEAD, True)] and outcome.after == HEAD and outcome.backup is not None


def test_a_sqlite_write_lock_held_by_the_service_is_waited_for(sqlite_settings) -> None:
    """BEGIN IMMEDIATE lets the busy timeout work instead of failing while the service writes."""
    import subprocess
    import sys
    import time

    from llm_proxy_db import commands as library

    library.upgrade(sqlite_settings, "0004", no_backup=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(1.5); c.execute('COMMIT')",
            str(sqlite_settings.database_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    result = library.upgrade(sqlite_settings, no_backup=True)
    holder.wait(timeout=10)
    assert result.after == "0007"
    assert time.monotonic() - started > 0.5
