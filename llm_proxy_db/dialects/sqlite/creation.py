"""Throw-away SQLite databases: a scratch file for known states, a copy for a rehearsal."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.connecting import connect
from llm_proxy_db.dialects.sqlite.backup import copy_database
from llm_proxy_db.dialects.sqlite.base import DRIVER
from llm_proxy_db.errors import BackupError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A connection, in a transaction, to a new SQLite file in a temporary directory (removed after).

    ``connection`` is not used: every SQLite database behaves alike.
    """
    del connection
    with tempfile.TemporaryDirectory(prefix="llm-proxy-scratch-") as directory:
        settings = Settings(driver=DRIVER, database_path=Path(directory) / "scratch.db")
        with connect(settings, foreign_keys=False) as scratch, scratch.begin():
            yield scratch


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A consistent copy of the database file in ``work_dir`` (a rehearsal's throw-away copy)."""
    assert settings.database_path is not None
    copy = work_dir / settings.database_path.name
    try:
        copy_database(settings.database_path, copy)
    except BackupError as exc:  # its hint is about migration backups, not this copy
        raise BackupError(
            exc.message.replace("cannot write the backup", "cannot write the rehearsal copy"),
            hint=f"the copy goes to the temporary directory ({work_dir}): free space there "
            "or point TMPDIR at a directory with room for a copy of the database",
        ) from None
    yield Settings(driver=DRIVER, database_path=copy)
