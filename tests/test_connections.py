"""One connection per command: a ``setup`` opens the database once after the fast-path read.

Counted with SQLAlchemy's pool ``connect`` event, which fires for every new DBAPI connection
any engine of this process opens.  Not counted, by design (docs/architecture.md): the fast
path's one bare-driver read (``sqlite3``/``psycopg``/``pymysql``: it answers "at head" before
any engine exists), a backup's own copy or client tool (SQLite's online copy reads the file
with ``sqlite3``; ``pg_dump``/``mariadb-dump`` are other processes), and the scratch place a
known-state derivation needs when the committed fingerprints do not describe the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.pool import Pool

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.migration import revisions
from llm_proxy_db.startup import UP_TO_DATE, UPGRADED


@contextmanager
def engine_connects() -> Iterator[list[object]]:
    """The DBAPI connections opened by any engine while the body runs."""
    opened: list[object] = []

    def count(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Pool, "connect", count)


def test_setup_of_an_empty_database_connects_once(settings: Settings) -> None:
    with engine_connects() as opened:
        result = commands.setup(settings, enabled=True)
    assert result.action == UPGRADED and result.after == revisions.head_revision()
    assert len(opened) == 1


def test_setup_behind_head_connects_once(settings: Settings) -> None:
    commands.upgrade(settings, "0004", no_backup=True)
    with engine_connects() as opened:
        result = commands.setup(settings, enabled=True, no_backup=True)
    assert result.before == "0004" and result.after == revisions.head_revision()
    assert len(opened) == 1


def test_setup_at_head_opens_no_engine(settings: Settings) -> None:
    """The fast path's one bare-driver read answers; no engine is created."""
    commands.setup(settings, enabled=True)
    with engine_connects() as opened:
        result = commands.setup(settings, enabled=True)
    assert result.action == UP_TO_DATE and result.before == result.after == revisions.head_revision()
    assert opened == []
