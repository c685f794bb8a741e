"""Tokens without an ``id``: what replicas of a release older than the token-id change write.

During a rolling deploy the previous release keeps serving while the new one migrates
(reference section 6).  Its code inserts tokens without ``id``; PostgreSQL fills the column
from its default, but the SQLite head DDL has none, so such a row gets ``id`` NULL and the
current service cannot address it by id.  The decision:

- every start through :func:`llm_proxy_db.startup.auto_upgrade` (``llm-proxy-db setup``) fills
  them with new UUIDs in one short transaction (an indexed ``UPDATE``: ``id`` is the primary
  key, so ``id IS NULL`` is found through its index);
- ``llm-proxy-db migrate status`` reports how many there are, and the fast path at head steps
  aside (one indexed probe, :data:`llm_proxy_db.dialects.sqlite.NULL_IDS`) when any exist,
  so a status or a start at head cannot miss them.

MySQL/MariaDB never has a NULL ``id``; without strict mode an older release's INSERT after 0005
writes ``''`` instead (docs/operations.md).  Nothing fills it (the operator does, once no old
replica is left); ``migrate status`` reports it (:func:`count_empty`, one primary-key lookup),
and its fast path at head steps aside when there is one.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for


def _applies(connection: Connection) -> bool:
    """A dialect where ``id`` can be NULL (SQLite), with a ``tokens.id`` column."""
    if dialect_for(connection).new_token_id_sql() is None or not sa.inspect(connection).has_table("tokens"):
        return False
    return any(column["name"] == "id" for column in sa.inspect(connection).get_columns("tokens"))


def count_missing(connection: Connection) -> int:
    """How many tokens have no ``id`` (0 on PostgreSQL and before revision 0005)."""
    if not _applies(connection):
        return 0
    return int(connection.exec_driver_sql("SELECT count(*) FROM tokens WHERE id IS NULL").scalar_one())


def count_empty(connection: Connection) -> int:
    """How many tokens have the id ``''`` (MySQL without strict mode; 0 elsewhere)."""
    return dialect_for(connection).empty_token_ids(connection)


def fill_missing(settings: Settings) -> int:
    """Give every token without ``id`` a new UUID, in one short transaction; returns how many."""
    new_id = dialect_for(settings).new_token_id_sql()
    if new_id is None or not dialect_for(settings).database_exists(settings):
        return 0
    with connect(settings, create=False) as connection:
        return fill_missing_on(connection, new_id)


def fill_missing_on(connection: Connection, new_id: str | None = None) -> int:
    """:func:`fill_missing` on an open connection (its transaction, if any, is ended first)."""
    if new_id is None:
        new_id = dialect_for(connection).new_token_id_sql()
        if new_id is None:
            return 0
    connection.rollback()
    applies = _applies(connection)
    connection.rollback()  # the inspection's read transaction
    if not applies:
        return 0
    with connection.begin():
        result = connection.exec_driver_sql(f"UPDATE tokens SET id = {new_id} WHERE id IS NULL")
    return int(result.rowcount or 0)
