"""0007 on MariaDB through a shadow copy: the service's writes go on, no row is lost, a kill
anywhere is finished by the next run (``llm_proxy_db.dialects.mysql_shadow``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import mysql_ddl
from llm_proxy_db.dialects.mysql import shadow as mysql_shadow
from llm_proxy_db.errors import DataLossError, MigrationError
from llm_proxy_db.migration import revisions
from llm_proxy_db.schema.drift import drift
from tests.safety_helpers import settings_env
from tests.seed import seed, snapshot

pytestmark = pytest.mark.mysql
IGNORE_TOKEN_ID = {"tokens": {"id"}}


@pytest.fixture
def mariadb(mysql_url: sa.engine.URL) -> Settings:
    """An empty MariaDB database (the shadow path is MariaDB's)."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    with connect(settings) as connection:
        if not mysql_shadow.is_mariadb(connection):
            pytest.skip("the shadow copy is used on MariaDB only (MySQL 8 keeps ALTER ... COPY)")
    return settings


def _at_0006_with_rows(settings: Settings, events: int = 3_000) -> dict[str, list[tuple]]:
    commands.upgrade(settings, "0006", no_backup=True)
    with connect(settings) as connection:
        seed(connection, projects=10, tokens=50, events=events)
    return _rows(settings)


def _rows(settings: Settings) -> dict[str, list[tuple]]:
    with connect(settings) as connection:
        return snapshot(connection, exclude=IGNORE_TOKEN_ID)


def _event_ids(settings: Settings) -> set[str]:
    with connect(settings) as connection:
        return {str(row[0]) for row in connection.exec_driver_sql("SELECT id FROM audit_events")}


def _leftovers(settings: Settings) -> tuple[bool, bool, set[str]]:
    with connect(settings) as connection:
        return (
            mysql_shadow.has_table(connection, "_audit_events_new"),
            mysql_shadow.has_table(connection, "_audit_events_old"),
            mysql_shadow.our_triggers(connection, "audit_events"),
        )


def _assert_at_head_clean(settings: Settings) -> None:
    status = commands.status(settings)
    assert status.current_revision == revisions.head_revision() and status.partly_applied is None
    assert _leftovers(settings) == (False, False, set())
    with connect(settings) as connection:
        assert drift(connection) == []


class ServiceWriter(threading.Thread):
    """The service's audit writes during the migration: inserts, updates and deletes, each in
    its own autocommit statement; records what the table must hold afterwards and the longest
    time one write waited."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.inserted: list[str] = []
        self.deleted: list[str] = []
        self.updated: list[str] = []
        self.longest = 0.0
        self.errors: list[str] = []

    def run(self) -> None:
        engine = sa.create_engine(self.settings.sqlalchemy_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            while not self.stop.is_set():
                try:
                    self._one_round(connection)
                except sa.exc.DBAPIError as exc:  # a table missing for an instant would show here
                    self.errors.append(str(exc.orig))
                time.sleep(0.002)
        engine.dispose()

    def _timed(self, connection: sa.engine.Connection, sql: str, params: dict[str, object]) -> None:
        started = time.monotonic()
        connection.execute(sa.text(sql), params)
        self.longest = max(self.longest, time.monotonic() - started)

    def _one_round(self, connection: sa.engine.Connection) -> None:
        event_id = str(uuid.uuid4())
        self._timed(
            connection,
            "INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
            "VALUES (:id, NOW(6), 'token.use', 'service', 'success')",
            {"id": event_id},
        )
        self.inserted.append(event_id)
        if len(self.inserted) % 5 == 0:
            victim = self.inserted.pop(0)
            self._timed(connection, "DELETE FROM audit_events WHERE id = :id", {"id": victim})
            self.deleted.append(victim)
        if len(self.inserted) % 3 == 0:
            target = self.inserted[0]
            self._timed(connection, "UPDATE audit_events SET reason = 'updated' WHERE id = :id", {"id": target})
            self.updated.append(target)


def test_0007_upgrade_keeps_every_row_and_every_write_of_the_service(mariadb) -> None:
    """Inserts, updates and deletes of the service during the copy all land in the new table."""
    _at_0006_with_rows(mariadb)
    before = _event_ids(mariadb)
    writer = ServiceWriter(mariadb)
    mysql_shadow.COPY_BATCH, batch = 100, mysql_shadow.COPY_BATCH  # many batches: writes interleave
    writer.start()
    try:
        commands.upgrade(mariadb, no_backup=True)
    finally:
        mysql_shadow.COPY_BATCH = batch
        writer.stop.set()
        writer.join(10)
    assert writer.errors == []
    _assert_at_head_clean(mariadb)
    with connect(mariadb) as connection:
        ids = {row[0] for row in connection.exec_driver_sql("SELECT id FROM audit_events")}
        updated = {row[0] for row in connection.exec_driver_sql("SELECT id FROM audit_events WHERE reason = 'updated'")}
    assert set(writer.inserted) <= ids
    assert not set(writer.deleted) & ids
    assert set(writer.updated) - set(writer.deleted) <= updated
    assert before - set(writer.deleted) <= ids
    print(f"longest service write during the online 0007: {writer.longest * 1000:.1f} ms")


def test_denied_and_error_are_accepted_after_the_swap(mariadb) -> None:
    _at_0006_with_rows(mariadb, events=100)
    commands.upgrade(mariadb, no_backup=True)
    with connect(mariadb) as connection:
        for outcome in ("denied", "error"):
            connection.exec_driver_sql(
                "INSERT INTO audit_events (id, timestamp, action, actor, outcome) VALUES (%s, NOW(6), 'a', 'b', %s)",
                (str(uuid.uuid4()), outcome),
            )
        connection.commit()


def test_0007_downgrade_through_the_shadow_copy_keeps_every_row(mariadb) -> None:
    before = _at_0006_with_rows(mariadb)
    commands.upgrade(mariadb, no_backup=True)
    commands.downgrade(mariadb, "0006", no_backup=True)
    assert commands.status(mariadb).current_revision == "0006"
    assert _rows(mariadb) == before
    assert _leftovers(mariadb) == (False, False, set())
    with connect(mariadb) as connection, pytest.raises(sa.exc.DBAPIError):
        connection.exec_driver_sql(
            "INSERT INTO audit_events (id, timestamp, action, actor, outcome) VALUES ('x', NOW(6), 'a', 'b', 'denied')"
        )


def test_an_operator_trigger_is_refused_before_any_change(mariadb) -> None:
    _at_0006_with_rows(mariadb, events=10)
    with connect(mariadb) as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER audit_mirror AFTER INSERT ON audit_events FOR EACH ROW SET @last_event = NEW.id"
        )
    with pytest.raises(MigrationError) as caught:
        commands.upgrade(mariadb, no_backup=True)
    assert "trigger audit_mirror" in caught.value.message and "nothing was changed" in caught.value.message
    assert commands.status(mariadb).current_revision == "0006"
    assert _leftovers(mariadb) == (False, False, set())


def test_a_failed_copy_removes_its_triggers_and_shadow_table(mariadb, monkeypatch) -> None:
    """Triggers left behind would send every service write into a table never swapped in."""
    _at_0006_with_rows(mariadb, events=50)
    before = _event_ids(mariadb)

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("copy interrupted")

    monkeypatch.setattr(mysql_shadow, "copy_rows", broken)
    with pytest.raises(MigrationError):
        commands.upgrade(mariadb, no_backup=True)
    assert _leftovers(mariadb) == (False, False, set())
    monkeypatch.undo()
    commands.upgrade(mariadb, no_backup=True)
    _assert_at_head_clean(mariadb)
    assert before == _event_ids(mariadb)


KILLED = """
import os, time
from llm_proxy_db import commands
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.dialects import mysql_ddl
from llm_proxy_db.dialects.mysql import shadow as mysql_shadow
pause = os.environ["PAUSE_AT"]
mysql_shadow.COPY_BATCH = 200
def hook(stage):
    if stage.endswith(pause):
        print("PAUSED", flush=True)
        time.sleep(60)
mysql_ddl.step_hook = hook
commands.upgrade(resolve_settings(), no_backup=True)
"""
KILL_POINTS = {
    "shadow table created": "online copy of audit_events in progress",
    "triggers created": "kept current by its triggers",
    "batch copied": "kept current by its triggers",
    "tables swapped": "old table _audit_events_old is still to be dropped",
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_anywhere_is_named_by_status_and_finished_by_the_next_run(mariadb, point) -> None:
    _at_0006_with_rows(mariadb, events=2_000)
    before = _event_ids(mariadb)
    env = {**settings_env(mariadb), "PAUSE_AT": point}
    proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        assert line.strip() == b"PAUSED", proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = commands.status(mariadb)
    assert status.current_revision == "0006"
    assert status.partly_applied is not None and KILL_POINTS[point] in status.partly_applied
    with connect(mariadb) as connection:  # the service writes meanwhile: the triggers carry it
        connection.exec_driver_sql(
            "INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
            "VALUES ('late', NOW(6), 'a', 'b', 'success')"
        )
        connection.commit()
    commands.upgrade(mariadb, no_backup=True)
    _assert_at_head_clean(mariadb)
    assert before | {"late"} == _event_ids(mariadb)


KILLED_DOWN = KILLED.replace("commands.upgrade(resolve_settings(), no_backup=True)",
                             'commands.downgrade(resolve_settings(), "0006", no_backup=True)')
DENIED = ("INSERT INTO audit_events (id, timestamp, action, actor, outcome) "
          "VALUES (%s, NOW(6), 'token.use', 'service', %s)")


def _insert_event(settings: Settings, event_id: str, outcome: str) -> None:
    with connect(settings) as connection:  # the 0007 service's own audit insert, autocommit
        connection.exec_driver_sql(DENIED, (event_id, outcome))
        connection.commit()


def _outcomes(settings: Settings) -> dict[str, tuple[str, str | None]]:
    with connect(settings) as connection:
        rows = connection.exec_driver_sql("SELECT id, outcome, reason FROM audit_events")
        return {str(row[0]): (str(row[1]), row[2]) for row in rows}


def test_a_downgrade_killed_mid_copy_leaves_no_trigger_that_fails_the_service(mariadb) -> None:
    """F2: `migrate down --to 0006` killed in 0007's revert copy left triggers writing into a
    shadow table with the two-value CHECK: the 0007 service's denied/error inserts failed (4025)."""
    _at_0006_with_rows(mariadb, events=2_000)
    commands.upgrade(mariadb, no_backup=True)
    before = _outcomes(mariadb)
    env = {**settings_env(mariadb), "PAUSE_AT": "batch copied"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOWN], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        assert line.strip() == b"PAUSED", proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any("0007 partly reverted" in line for line in commands.status(mariadb).unfinished)
    assert len(_leftovers(mariadb)[2]) == 3  # the copy's triggers are still there
    for outcome in ("denied", "error", "success"):
        _insert_event(mariadb, f"late-{outcome}", outcome)
    with pytest.raises(DataLossError) as caught:  # the rerun refuses: 0006 cannot hold them
        commands.downgrade(mariadb, "0006", no_backup=True)
    assert "2 audit event(s) with outcome denied/error" in caught.value.message
    assert len(_leftovers(mariadb)[2]) == 3  # kept for the rerun; they still fail no write:
    _insert_event(mariadb, "later-denied", "denied")
    after = _outcomes(mariadb)
    assert after == {**before, "late-denied": ("denied", None), "late-error": ("error", None),
                     "late-success": ("success", None), "later-denied": ("denied", None)}
    assert commands.status(mariadb).current_revision == revisions.head_revision()
    commands.downgrade(mariadb, "0006", no_backup=True, allow_data_loss=True)
    folded = _outcomes(mariadb)
    assert folded["late-denied"] == ("failure", "[outcome was denied] ") and set(folded) == set(after)
    assert _leftovers(mariadb) == (False, False, set())


def _during_the_copy(action: Callable[[], None]) -> Callable[[str], None]:
    done: list[str] = []

    def hook(stage: str) -> None:
        if stage.endswith("batch copied") and not done:
            done.append(stage)
            action()
    return hook


def test_denied_written_during_a_live_downgrade_copy_is_kept_and_refused(mariadb, monkeypatch) -> None:
    """The service's denied insert during the revert's copy succeeds; the swap is refused
    (exit 11), the table keeps every row, nothing of the copy is left."""
    _at_0006_with_rows(mariadb, events=1_000)
    commands.upgrade(mariadb, no_backup=True)
    before = _outcomes(mariadb)
    monkeypatch.setattr(mysql_shadow, "COPY_BATCH", 100)
    monkeypatch.setattr(mysql_ddl, "step_hook", _during_the_copy(lambda: _insert_event(mariadb, "mid", "denied")))
    with pytest.raises(DataLossError) as caught:
        commands.downgrade(mariadb, "0006", no_backup=True)
    assert "1 row(s) in audit_events" in caught.value.message
    assert _outcomes(mariadb) == {**before, "mid": ("denied", None)}
    assert _leftovers(mariadb) == (False, False, set())
    assert commands.status(mariadb).current_revision == revisions.head_revision()


def test_a_denied_event_gone_before_the_swap_lets_the_downgrade_finish(mariadb, monkeypatch) -> None:
    """Not copied while denied, copied once changed: the triggers carry the row's last state."""
    _at_0006_with_rows(mariadb, events=1_000)
    commands.upgrade(mariadb, no_backup=True)
    before = _outcomes(mariadb)

    def denied_then_changed() -> None:
        _insert_event(mariadb, "mid-changed", "denied")
        _insert_event(mariadb, "mid-deleted", "error")
        with connect(mariadb) as connection:
            connection.exec_driver_sql("UPDATE audit_events SET outcome = 'failure' WHERE id = 'mid-changed'")
            connection.exec_driver_sql("DELETE FROM audit_events WHERE id = 'mid-deleted'")
            connection.commit()

    monkeypatch.setattr(mysql_shadow, "COPY_BATCH", 100)
    monkeypatch.setattr(mysql_ddl, "step_hook", _during_the_copy(denied_then_changed))
    commands.downgrade(mariadb, "0006", no_backup=True)
    assert commands.status(mariadb).current_revision == "0006"
    assert _outcomes(mariadb) == {**before, "mid-changed": ("failure", None)}
    assert _leftovers(mariadb) == (False, False, set())


def test_a_downgrade_killed_before_its_swap_is_lenient_again_on_the_rerun(mariadb, monkeypatch) -> None:
    """Killed in the milliseconds between the triggers that carry every row and the swap: those
    triggers fail a denied insert until the next run, which puts the lenient ones back first."""
    _at_0006_with_rows(mariadb, events=500)
    commands.upgrade(mariadb, no_backup=True)
    env = {**settings_env(mariadb), "PAUSE_AT": "triggers carry every row"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOWN], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        assert line.strip() == b"PAUSED", proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(sa.exc.OperationalError, match="4025"):
        _insert_event(mariadb, "in-the-window", "denied")
    before = _outcomes(mariadb)
    monkeypatch.setattr(mysql_ddl, "step_hook", _during_the_copy(lambda: _insert_event(mariadb, "rerun", "denied")))
    with pytest.raises(DataLossError):
        commands.downgrade(mariadb, "0006", no_backup=True)
    assert _outcomes(mariadb) == {**before, "rerun": ("denied", None)}
    assert _leftovers(mariadb) == (False, False, set())


def test_with_allow_data_loss_a_denied_event_of_the_copy_is_folded(mariadb, monkeypatch) -> None:
    _at_0006_with_rows(mariadb, events=1_000)
    commands.upgrade(mariadb, no_backup=True)
    before = _outcomes(mariadb)
    monkeypatch.setattr(mysql_shadow, "COPY_BATCH", 100)
    monkeypatch.setattr(mysql_ddl, "step_hook", _during_the_copy(lambda: _insert_event(mariadb, "mid", "error")))
    commands.downgrade(mariadb, "0006", no_backup=True, allow_data_loss=True)
    assert commands.status(mariadb).current_revision == "0006"
    assert _outcomes(mariadb) == {**before, "mid": ("failure", "[outcome was error] ")}


def test_offline_sql_keeps_the_plain_alter(mariadb) -> None:
    """``--sql`` cannot run a copy: it renders the ALTER (what an operator would run by hand)."""
    sql = commands.upgrade_sql(mariadb, "0007", "0006")
    assert "ADD CONSTRAINT audit_events_outcome_check" in sql and "_audit_events_new" not in sql


def test_step_hook_sees_every_stage(mariadb, monkeypatch) -> None:
    _at_0006_with_rows(mariadb, events=10)
    stages: list[str] = []
    monkeypatch.setattr(mysql_ddl, "step_hook", stages.append)
    commands.upgrade(mariadb, no_backup=True)
    assert [s for s in stages if s.startswith("online copy")] == [
        "online copy of audit_events: shadow table created",
        "online copy of audit_events: triggers created",
        "online copy of audit_events: batch copied",
        "online copy of audit_events: tables swapped",
    ]


class TokenWriter(threading.Thread):
    """The service's token traffic during 0005: new tokens, request-counter updates."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.inserted: list[str] = []
        self.counted = 0
        self.errors: list[str] = []

    def run(self) -> None:
        engine = sa.create_engine(self.settings.sqlalchemy_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            while not self.stop.is_set():
                token = f"live-{uuid.uuid4()}"
                try:
                    # As the release that ships with 0005 writes them: with an id (before the
                    # swap the column exists, filled meanwhile by its default for other writers).
                    connection.exec_driver_sql(
                        "INSERT INTO tokens (id, token, project_id) VALUES (%s, %s, 'proj-1')",
                        (str(uuid.uuid4()), token),
                    )
                    self.inserted.append(token)
                    connection.exec_driver_sql(
                        "UPDATE tokens SET request_count = request_count + 1 WHERE token = 'tok-00001'"
                    )
                    self.counted += 1
                except sa.exc.DBAPIError as exc:
                    self.errors.append(str(exc.orig))
                time.sleep(0.002)
        engine.dispose()


def test_0005_under_toi_rebuilds_tokens_through_a_shadow_copy(mariadb, monkeypatch) -> None:
    """Under Galera's TOI an INPLACE rebuild blocks every node: the shadow copy is used, the
    foreign key to projects keeps the service's name and its cascade, every token survives."""
    monkeypatch.setattr(mysql_shadow, "under_toi", lambda connection: True)
    commands.upgrade(mariadb, "0004", no_backup=True)
    with connect(mariadb) as connection:
        seed(connection, projects=10, tokens=3_000, events=10)
        count_before = connection.exec_driver_sql(
            "SELECT request_count FROM tokens WHERE token = 'tok-00001'"
        ).scalar()
        tokens_before = {row[0] for row in connection.exec_driver_sql("SELECT token FROM tokens")}
    stages: list[str] = []
    monkeypatch.setattr(mysql_shadow, "COPY_BATCH", 100)
    writer = TokenWriter(mariadb)
    monkeypatch.setattr(mysql_ddl, "step_hook", lambda stage: (stages.append(stage), _start_once(writer, stage)))
    try:
        commands.upgrade(mariadb, no_backup=True)
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.errors == []
    assert "online copy of tokens: tables swapped" in stages
    status = commands.status(mariadb)
    assert status.current_revision == revisions.head_revision() and status.partly_applied is None
    with connect(mariadb) as connection:
        assert drift(connection) == []
        tokens = {row[0] for row in connection.exec_driver_sql("SELECT token FROM tokens")}
        assert tokens_before | set(writer.inserted) == tokens
        assert connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE id IS NULL").scalar() == 0
        counted = connection.exec_driver_sql("SELECT request_count FROM tokens WHERE token = 'tok-00001'").scalar()
        assert counted == count_before + writer.counted
        names = {row[0] for row in connection.exec_driver_sql(
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'tokens'"
        )}
        assert names == {"tokens_ibfk_1"}
        connection.exec_driver_sql("DELETE FROM projects WHERE id = 'proj-2'")  # the cascade still works
        assert connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE project_id = 'proj-2'").scalar() == 0
        connection.commit()
    assert _leftovers_of(mariadb, "tokens") == (False, False, set())


def _start_once(writer: threading.Thread, stage: str) -> None:
    """The service's writes start once tokens.id exists (the release that writes ids is deployed)."""
    if stage.startswith("add column tokens.id") and not writer.is_alive():
        writer.start()


def _leftovers_of(settings: Settings, table: str) -> tuple[bool, bool, set[str]]:
    with connect(settings) as connection:
        return (
            mysql_shadow.has_table(connection, f"_{table}_new"),
            mysql_shadow.has_table(connection, f"_{table}_old"),
            mysql_shadow.our_triggers(connection, table),
        )


def test_a_foreign_key_pointing_at_the_table_is_refused(mariadb) -> None:
    _at_0006_with_rows(mariadb, events=10)
    with connect(mariadb) as connection:
        connection.exec_driver_sql(
            "CREATE TABLE event_notes (id INT PRIMARY KEY, event_id VARCHAR(191), "
            "FOREIGN KEY (event_id) REFERENCES audit_events (id))"
        )
    with pytest.raises(MigrationError) as caught:
        commands.upgrade(mariadb, no_backup=True)
    assert "event_notes_ibfk_1 (event_notes -> audit_events)" in caught.value.message
    assert _leftovers(mariadb) == (False, False, set())


def test_a_batch_that_loses_a_conflict_is_retried(mariadb, monkeypatch) -> None:
    """Galera's certification conflict (or an InnoDB deadlock) comes as 1213: the batch again."""
    _at_0006_with_rows(mariadb, events=300)
    failures = iter([True, True])
    original_exec = sa.engine.Connection.exec_driver_sql

    def flaky(self, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        copying = isinstance(statement, str) and statement.startswith("INSERT INTO `_audit_events_new`")
        if copying and next(failures, False):
            raise sa.exc.OperationalError(statement, None, _Deadlock())
        return original_exec(self, statement, *args, **kwargs)

    monkeypatch.setattr(sa.engine.Connection, "exec_driver_sql", flaky)
    events: list[str] = []
    commands.upgrade(mariadb, no_backup=True, progress=lambda event: events.append(str(event)))
    monkeypatch.undo()
    assert sum("retrying batch after certification conflict" in event for event in events) == 2
    _assert_at_head_clean(mariadb)


class _Deadlock(Exception):
    def __init__(self) -> None:
        super().__init__(1213, "Deadlock found when trying to get lock; try restarting transaction")
