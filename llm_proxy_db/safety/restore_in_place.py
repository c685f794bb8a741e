"""Replacing a live SQLite database's contents with a backup's, in one write transaction.

The database file itself is kept (inode, mode, owner, every symlink to it).  Under
``BEGIN IMMEDIATE`` no other connection can commit: the safety copy is then read by a
separate connection (it sees exactly the committed state), every object of the database
is dropped and recreated from the staged backup, rows copied, and the transaction
committed.  A service write either committed before (it is in the safety copy) or waits
for the lock and commits after (on the restored data): none is acknowledged and lost.
Other connections re-read the schema on their next statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from llm_proxy_db.errors import BackupError

_OBJECTS = "SELECT type, name, sql FROM {schema}.sqlite_master WHERE name NOT LIKE 'sqlite_%'"


def replace_contents(
    database: Path, staged: Path, timeout: float, keep_safety_copy: Callable[[], Path | None]
) -> Path | None:
    """Make ``database`` hold exactly what ``staged`` holds; returns the safety copy made."""
    live = sqlite3.connect(str(database), isolation_level=None, timeout=timeout)
    try:
        live.execute("PRAGMA foreign_keys=OFF")
        live.execute("ATTACH DATABASE ? AS restored", (str(staged),))
        _begin(live, database)
        try:
            kept = keep_safety_copy()
            _drop_everything(live)
            _copy_everything(live)
            live.execute("COMMIT")
        except BaseException:
            live.execute("ROLLBACK")
            raise
        live.execute("DETACH DATABASE restored")
        return kept
    finally:
        live.close()


def _begin(live: sqlite3.Connection, database: Path) -> None:
    try:
        live.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise BackupError(
            f"cannot restore into {database}: {exc} (another process kept it busy)",
            hint="stop the service or retry when it is idle, or raise --lock-timeout; "
            "the database was not changed",
        ) from None


def _drop_everything(live: sqlite3.Connection) -> None:
    objects = live.execute(_OBJECTS.format(schema="main")).fetchall()
    order = {"view": 0, "trigger": 1, "index": 2, "table": 3}
    for kind, name, sql in sorted(objects, key=lambda row: order.get(row[0], 4)):
        if kind == "index" and sql is None:
            continue  # an automatic index goes with its table
        live.execute(f'DROP {kind.upper()} IF EXISTS main."{_quoted(name)}"')


def _copy_everything(live: sqlite3.Connection) -> None:
    objects = live.execute(_OBJECTS.format(schema="restored")).fetchall()
    tables = [(name, sql) for kind, name, sql in objects if kind == "table"]
    for name, sql in tables:
        live.execute(sql)
        live.execute(f'INSERT INTO main."{_quoted(name)}" SELECT * FROM restored."{_quoted(name)}"')
    for kind, _name, sql in objects:
        if kind != "table" and sql is not None:
            live.execute(sql)
    if live.execute("SELECT 1 FROM restored.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        live.execute("DELETE FROM main.sqlite_sequence")
        live.execute("INSERT INTO main.sqlite_sequence SELECT * FROM restored.sqlite_sequence")
    version = live.execute("PRAGMA restored.user_version").fetchone()[0]
    live.execute(f"PRAGMA main.user_version = {int(version)}")


def _quoted(name: str) -> str:
    return name.replace('"', '""')
